using NetWire.Core.Packets;

namespace NetWire.Stack.Tcp;

/// <summary>Round-trip estimation and the retransmission, persist and TIME-WAIT timers.</summary>
internal sealed partial class TcpConnection
{
    private void ArmRto(long now) => _rtoDeadline = now + _rtoMs;

    private void SampleRtt(long sampleMs)
    {
        // RFC 6298 2.2 and 2.3.
        if (_srttMs == 0)
        {
            _srttMs = Math.Max(sampleMs, 1);
            _rttvarMs = _srttMs / 2;
        }
        else
        {
            _rttvarMs = ((3 * _rttvarMs) + Math.Abs(_srttMs - sampleMs)) / 4;
            _srttMs = ((7 * _srttMs) + sampleMs) / 8;
        }

        _rtoMs = Math.Clamp(_srttMs + Math.Max(10, 4 * _rttvarMs), MinRtoMs, MaxRtoMs);
    }

    /// <summary>Retransmission, persist and TIME-WAIT timers. Caller holds the gateway lock.</summary>
    public void OnTimer(long now)
    {
        if (_state == State.TimeWait)
        {
            // Not while bytes from the guest still wait for the host to take them: the socket closes
            // once they and the FIN are written (CloseHostAfterTimeWait), and a close now would lose them.
            if (now >= _timeWaitUntil && _host is null)
            {
                Release();
            }

            return;
        }

        if (_rtoDeadline == 0 || now < _rtoDeadline)
        {
            return;
        }

        _rtoDeadline = 0;
        if (++_retries > MaxRetries)
        {
            Abort(sendReset: true);
            return;
        }

        // RFC 6298 5.5: back off.
        _rtoMs = Math.Min(_rtoMs * 2, MaxRtoMs);
        _rttStart = 0;
        switch (_state)
        {
            case State.SynReceived:
                SendSyn(TcpFlags.Syn | TcpFlags.Ack);
                _gateway.Counters.Retransmit();
                ArmRto(now);
                return;
            case State.SynSent:
                SendSyn(TcpFlags.Syn);
                _gateway.Counters.Retransmit();
                ArmRto(now);
                return;
            case State.Established:
                break;
            default:
                return;
        }

        if (_sndMax != _sndUna && _sndWnd > 0)
        {
            // Go back to SND.UNA; TrySendData resends (and re-sends a FIN that was in flight).
            _sndNxt = _sndUna;
            _finSent = false;
            _duplicateAcks = 0;
            var inFlight = Math.Min(_toGuest.Count, _mss);
            if (inFlight > 0 && _gateway.CanEmit)
            {
                SendData(_sndUna, inFlight, retransmit: true);
                _sndNxt += (uint)inFlight;

                // The resent segment may reach past what was in flight (after a one-byte probe):
                // an ACK for it must not look like an ACK of unsent data.
                if ((int)(_sndNxt - _sndMax) > 0)
                {
                    _sndMax = _sndNxt;
                }
            }
            else if (inFlight == 0)
            {
                _gateway.Counters.Retransmit();
            }

            TrySendData();
            ArmRto(now);
            return;
        }

        if (_sndMax != _sndUna && _gateway.CanEmit)
        {
            // A zero window with something in flight (the FIN, or data past a right edge the
            // guest moved back): the first unacknowledged byte, or the FIN alone, is the probe. A
            // persisting window never aborts the connection (RFC 9293 3.8.6.1).
            _gateway.Counters.Retransmit();
            if (_toGuest.Count > 0)
            {
                SendSegment(_sndUna, TcpFlags.Ack, 0, 1);
            }
            else
            {
                SendSegment(_sndUna, TcpFlags.Fin | TcpFlags.Ack, 0, 0);
            }

            _retries = 0;
            ArmRto(now);
            return;
        }

        var unsent = _toGuest.Count - (int)(_sndNxt - _sndUna);
        if (_sndWnd == 0 && unsent > 0 && _gateway.CanEmit)
        {
            // RFC 9293 3.8.6.1: a zero-window probe carries the next byte.
            _gateway.Counters.Retransmit();
            SendSegment(_sndNxt, TcpFlags.Ack, (int)(_sndNxt - _sndUna), 1);
            if ((int)(_sndNxt + 1 - _sndMax) > 0)
            {
                _sndMax = _sndNxt + 1;
            }

            _retries = 0;
            ArmRto(now);
        }
        else if (_sndMax != _sndUna || unsent > 0)
        {
            // Also when the guest end was full at this tick: a persist timer that lapses here
            // would never be armed again if the guest's window update was lost.
            ArmRto(now);
        }
    }
}
