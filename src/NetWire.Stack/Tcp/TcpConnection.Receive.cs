namespace NetWire.Stack.Tcp;

/// <summary>The receive side (guest to host): the window check, data in order and out of order, waking the host sender.</summary>
internal sealed partial class TcpConnection
{
    private bool InReceiveWindow(uint seq)
    {
        var window = (uint)Math.Max(_toHost.Free, 1);
        return seq - _rcvNxt < window;
    }

    private void OnData(uint seq, ReadOnlySpan<byte> data, bool fin)
    {
        if (_guestFin)
        {
            // Everything up to the FIN is in; a retransmission needs only an ACK.
            SendAck();
            return;
        }

        var behind = (int)(_rcvNxt - seq);
        if (behind > 0)
        {
            if (behind > data.Length)
            {
                SendAck();
                return;
            }

            data = data[behind..];
            seq = _rcvNxt;
        }

        var offset = (int)(seq - _rcvNxt);
        var window = _toHost.Free;
        if (data.Length > 0 && offset >= window)
        {
            _gateway.Counters.Drop(StackDrop.OutOfWindow);
            SendAck();
            return;
        }

        var fit = Math.Min(data.Length, window - offset);
        if (fit < data.Length)
        {
            fin = false;
        }

        if (fit > 0)
        {
            _toHost.WriteAt(offset, data[..fit]);
        }

        if (offset > 0)
        {
            if (fit > 0)
            {
                AddRange(seq, seq + (uint)fit);
            }

            if (fin)
            {
                _outOfOrderFin = seq + (uint)fit;
                _hasOutOfOrderFin = true;
            }

            // A duplicate ACK at once, so the guest's fast retransmit starts.
            SendAck();
            return;
        }

        _toHost.Commit(fit);
        _rcvNxt += (uint)fit;
        var filledGap = MergeRanges();
        if (fin || (_hasOutOfOrderFin && _outOfOrderFin == _rcvNxt))
        {
            _rcvNxt++;
            _guestFin = true;
        }

        // The host sender wakes and the ACK goes out at the end of the guest's burst (one
        // socket write and one ACK for many segments), or at once for a FIN, a filled gap, or
        // when the burst has taken a quarter of the window (so the guest never stalls on it).
        _toHostPending |= fit > 0 || _guestFin;
        _unackedSegments++;
        if (fin || _guestFin || filledGap || (int)(_rcvNxt - _rcvAcked) >= _toHost.Capacity / 4)
        {
            WakeHostSender();
            SendAck();
        }

        _gateway.RequestAck(this);
    }

    private void WakeHostSender()
    {
        if (_toHostPending)
        {
            _toHostPending = false;
            WriteHost();
        }
    }

    private void AddRange(uint start, uint end)
    {
        for (var i = 0; i < _outOfOrder.Count; i++)
        {
            var (s, e) = _outOfOrder[i];
            if ((int)(start - e) <= 0 && (int)(end - s) >= 0)
            {
                _outOfOrder[i] = ((int)(start - s) < 0 ? start : s, (int)(end - e) > 0 ? end : e);
                return;
            }
        }

        if (_outOfOrder.Count < MaxOutOfOrderRanges)
        {
            _outOfOrder.Add((start, end));
        }
    }

    private bool MergeRanges()
    {
        var merged = false;
        for (var again = true; again;)
        {
            again = false;
            for (var i = 0; i < _outOfOrder.Count; i++)
            {
                var (s, e) = _outOfOrder[i];
                if ((int)(s - _rcvNxt) <= 0)
                {
                    if ((int)(e - _rcvNxt) > 0)
                    {
                        _toHost.Commit((int)(e - _rcvNxt));
                        _rcvNxt = e;
                    }

                    _outOfOrder.RemoveAt(i);
                    merged = again = true;
                    break;
                }
            }
        }

        return merged;
    }
}
