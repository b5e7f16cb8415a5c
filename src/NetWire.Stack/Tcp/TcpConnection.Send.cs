using NetWire.Core.Frames;
using NetWire.Core.Packets;

namespace NetWire.Stack.Tcp;

/// <summary>The send side (host to guest): ACKs from the guest, segments within its window, SYNs and bare ACKs.</summary>
internal sealed partial class TcpConnection
{
    private void OnAck(TcpPacket segment, bool pureAck)
    {
        var ack = segment.AckNumber;
        var window = GuestWindow(segment.Window);
        if ((int)(ack - _sndMax) > 0)
        {
            // RFC 9293 3.10.7.4: an ACK for something not yet sent is answered with an ACK and dropped.
            _gateway.Counters.Drop(StackDrop.OutOfWindow);
            SendAck();
            return;
        }

        var now = _gateway.NowMs;
        if ((int)(ack - _sndUna) > 0)
        {
            var acked = ack - _sndUna;
            var dataAcked = (int)Math.Min(acked, (uint)_toGuest.Count);
            _toGuest.Consume(dataAcked);

            // Only the FIN takes sequence space past the data. Judged by sequence, not by _finSent:
            // a go-back-N clears _finSent while the first FIN may still be acknowledged.
            if (acked > (uint)dataAcked)
            {
                _finAcked = true;
                _finSent = true;
            }

            if (_rttStart != 0 && (int)(ack - _rttSeq) >= 0)
            {
                SampleRtt(now - _rttStart);
                _rttStart = 0;
            }

            _sndUna = ack;
            if ((int)(_sndNxt - _sndUna) < 0)
            {
                _sndNxt = _sndUna;
            }

            _duplicateAcks = 0;
            _retries = 0;
            _rtoDeadline = _sndUna == _sndMax ? 0 : now + _rtoMs;
            _toGuest.ReleaseIfEmpty();
        }
        else if (ack == _sndUna && pureAck && _sndMax != _sndUna && window == _sndWnd)
        {
            // RFC 5681 3.2: the third duplicate ACK retransmits the first unacknowledged segment.
            if (++_duplicateAcks == 3)
            {
                // Never past SND.MAX: with only a one-byte probe in flight, a full segment would
                // carry bytes the guest could then acknowledge as "unsent".
                SendData(_sndUna, Math.Min(Math.Min(_mss, _toGuest.Count), (int)(_sndMax - _sndUna)), retransmit: true);
            }
        }
        else if ((int)(ack - _sndUna) < 0)
        {
            // RFC 9293 3.10.7.4: an old (reordered) ACK must not move the window back.
            return;
        }

        _sndWnd = window;
    }

    /// <summary>The guest's window field scaled (RFC 7323 2.3); -1 means the guest offered no scaling.</summary>
    private long GuestWindow(ushort window) => (long)window << Math.Max(_sendShift, 0);

    /// <summary>Sends what the guest's window and the guest end allow. Caller holds the gateway lock.</summary>
    public void TrySendData()
    {
        if (_state != State.Established)
        {
            return;
        }

        while (true)
        {
            var inFlight = (int)(_sndNxt - _sndUna);
            var unsent = _toGuest.Count - inFlight;
            var usable = _sndWnd - inFlight;
            if (unsent > 0 && usable > 0)
            {
                if (!_gateway.CanEmit)
                {
                    _gateway.RequestFlush(this);
                    return;
                }

                var length = (int)Math.Min(Math.Min(unsent, usable), SegmentLimit(unsent));
                SendData(_sndNxt, length, retransmit: false);
                _sndNxt += (uint)length;
                if ((int)(_sndNxt - _sndMax) > 0)
                {
                    _sndMax = _sndNxt;
                }

                continue;
            }

            if (unsent == 0 && _hostEof && !_finSent && !_finAcked)
            {
                if (!_gateway.CanEmit)
                {
                    _gateway.RequestFlush(this);
                    return;
                }

                SendSegment(_sndNxt, TcpFlags.Fin | TcpFlags.Ack, 0, 0);
                _finSent = true;
                _sndNxt++;
                if ((int)(_sndNxt - _sndMax) > 0)
                {
                    _sndMax = _sndNxt;
                }

                if (_rtoDeadline == 0)
                {
                    ArmRto(_gateway.NowMs);
                }
            }

            if (unsent > 0 && _sndWnd == 0 && _rtoDeadline == 0)
            {
                // Zero window: the persist timer sends a probe.
                ArmRto(_gateway.NowMs);
            }

            return;
        }
    }

    /// <summary>
    /// The most data for the next segment: the MSS, or when the guest end cuts large segments
    /// itself (a TAP's TSO) as many whole MSS as fit in one 64 KiB packet, or all of
    /// <paramref name="unsent"/> when that fits.
    /// </summary>
    private int SegmentLimit(int unsent)
    {
        if (unsent <= _mss || (_gateway.GuestOffloads & (Key.GuestIp.IsIpv4 ? WireOffloads.Tso4 : WireOffloads.Tso6)) == 0)
        {
            return _mss;
        }

        return unsent <= MaxLargeSegmentData ? unsent : Math.Max(_mss, MaxLargeSegmentData / _mss * _mss);
    }

    /// <summary>Retry after the guest end had no room. Caller holds the gateway lock.</summary>
    public void Flush()
    {
        SendPendingAck();
        TrySendData();
        CheckClosed();
    }

    /// <summary>The guest's burst ended: hand its bytes to the host sender, send the ACK owed. Caller holds the gateway lock.</summary>
    public void EndOfBatch()
    {
        WakeHostSender();
        SendPendingAck();
    }

    /// <summary>Sends the ACK owed for data received in the last batch. Caller holds the gateway lock.</summary>
    public void SendPendingAck()
    {
        if (_unackedSegments > 0 && _state == State.Established)
        {
            SendAck();
        }
    }

    private void SendData(uint seq, int length, bool retransmit)
    {
        if (length <= 0)
        {
            return;
        }

        var now = _gateway.NowMs;
        if (retransmit)
        {
            _gateway.Counters.Retransmit();
            _rttStart = 0;
        }
        else if (_rttStart == 0)
        {
            _rttSeq = seq + (uint)length;
            _rttStart = now;
        }

        var offset = (int)(seq - _sndUna);
        var last = offset + length == _toGuest.Count;
        SendSegment(seq, last ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack, offset, length);
        if (_rtoDeadline == 0)
        {
            ArmRto(now);
        }
    }

    private void SendAck() => SendSegment(_sndNxt, TcpFlags.Ack, 0, 0);

    /// <summary>The window field for the free space towards the host, and the window it stands for (scaled back up).</summary>
    private ushort WindowField(out int window)
    {
        // No window scaling on this connection when the guest offered none (RFC 7323 2.2: both sides must).
        var shift = _sendShift < 0 ? 0 : Math.Max(_receiveShift, 0);
        var field = (ushort)Math.Min(_toHost.Free >> shift, 65535);
        window = field << shift;
        return field;
    }

    private void SendSyn(TcpFlags flags)
    {
        // MSS, and window scale when the guest offered scaling (always in our own SYN).
        var scale = flags == TcpFlags.Syn || _sendShift >= 0;
        var options = new TcpOptions { MaxSegmentSize = (ushort)_linkMss, WindowScale = scale ? (byte)_receiveShift : null };
        // RFC 7323 2.2: the window of a SYN is never scaled.
        var window = (ushort)Math.Min(_toHost.Free, 65535);
        _lastWindow = window;
        var header = new TcpHeader(Key.RemotePort, Key.GuestPort, _iss, flags == TcpFlags.Syn ? 0 : _rcvNxt, flags, window) { Options = options };
        var frame = _gateway.RentIp(Key.GuestIp, header.Length);
        header.WriteTo(frame.Span[_segmentOffset..], _toGuestPseudoHeader);
        if (flags == TcpFlags.Syn)
        {
            _sendShift = -1;
        }

        _gateway.EmitIp(frame, IpProtocol.Tcp, Key.RemoteIp, Key.GuestIp);
    }

    private void SendSegment(uint seq, TcpFlags flags, int ringOffset, int length)
    {
        var frame = _gateway.RentIp(Key.GuestIp, TcpPacket.MinHeaderLength + length);
        var tcp = frame.Span[_segmentOffset..];
        var window = WindowField(out _lastWindow);
        if (length > 0)
        {
            _toGuest.CopyTo(ringOffset, tcp.Slice(TcpPacket.MinHeaderLength, length));
        }

        var header = new TcpHeader(Key.RemotePort, Key.GuestPort, seq, _rcvNxt, flags, window);
        if ((_gateway.GuestOffloads & WireOffloads.Checksum) != 0)
        {
            // The guest end's device sums the data (and cuts a large segment): the data is not read here.
            header.WriteToWithChecksumOffload(tcp, _toGuestPseudoHeader);
            var transportOffset = frame.Length - tcp.Length;
            frame.Offload = FrameOffload.TcpSegment(transportOffset, transportOffset + TcpPacket.MinHeaderLength, length, _mss, !Key.GuestIp.IsIpv4);
        }
        else
        {
            header.WriteTo(tcp, _toGuestPseudoHeader);
        }
        _unackedSegments = 0;
        _rcvAcked = _rcvNxt;
        _gateway.EmitIp(frame, IpProtocol.Tcp, Key.RemoteIp, Key.GuestIp);
    }
}
