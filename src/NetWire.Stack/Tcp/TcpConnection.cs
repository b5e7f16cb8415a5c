using System.Net;
using System.Net.Sockets;

namespace NetWire.Stack.Tcp;

/// <summary>
/// One TCP connection between the guest and a host socket: a user-mode TCP endpoint towards the
/// guest, relaying bytes to and from the socket.
/// </summary>
/// <remarks>
/// How this works:
/// <code>
///  guest ──segments──▶ [_toHost ring] ──SendLoop──▶ host socket     window = free space of _toHost
///  guest ◀─segments─── [_toGuest ring] ◀─ReceiveLoop── host socket  ring = unacked + unsent bytes
/// </code>
/// Passive open (the guest's SYN): the host connect runs first; success answers SYN-ACK, failure
/// a RST (so a refused port is "connection refused" in the guest, not a hang). Active open (a
/// host forward): SYN to the guest, SYN-ACK back. The socket loops start once established.
/// Guest side: out-of-order data is written into _toHost ahead of its commit and tracked as
/// ranges; ACKs are cumulative, sent at the end of a batch of guest frames or at once for
/// out-of-order data, FIN and window updates. Host side: segments of at most the guest's MSS
/// within its (scaled) window, only while the guest end can take frames; RTO per RFC 6298
/// (200 ms floor, exponential backoff, go-back-N from SND.UNA), fast retransmit of one segment
/// on the third duplicate ACK, and a one-byte zero-window probe on the same timer. Half-close
/// both ways: a guest FIN becomes shutdown(SHUT_WR) once _toHost drains; host EOF becomes a FIN
/// once _toGuest is sent. RST both ways. When both FINs are acknowledged the connection stays in
/// TIME-WAIT to re-ACK retransmitted FINs, then leaves the table. Not done: SACK, timestamps,
/// congestion control (the link to the guest is a local queue with backpressure).
/// </remarks>
internal sealed class TcpConnection
{
    private const int MaxRetries = 12;
    private const long MinRtoMs = 200;
    private const long MaxRtoMs = 60_000;
    private const int MaxOutOfOrderRanges = 32;

    private readonly Gateway _gateway;
    private readonly TcpNat _table;
    private readonly ByteRing _toHost;
    private readonly ByteRing _toGuest;
    private readonly List<(uint Start, uint End)> _outOfOrder = [];
    private readonly AsyncSignal _toHostReady = new();
    private readonly AsyncSignal _toGuestRoom = new();
    private readonly int _receiveShift;

    private State _state;
    private Socket? _host;
    private int _loopsRunning;

    // Receive side (guest -> host).
    private uint _rcvNxt;
    private bool _guestFin;
    private uint _outOfOrderFin;
    private bool _hasOutOfOrderFin;
    private int _lastWindow;
    private int _unackedSegments;
    private uint _rcvAcked;
    private bool _toHostPending;

    // Send side (host -> guest).
    private uint _iss;
    private uint _sndUna;
    private uint _sndNxt;
    private uint _sndMax;
    private long _sndWnd;
    private int _sendShift;
    private int _mss;
    private bool _hostEof;
    private bool _finSent;
    private bool _finAcked;
    private int _duplicateAcks;

    // Timers, in gateway milliseconds; 0 = not armed.
    private long _rtoDeadline;
    private long _rtoMs = 1000;
    private long _srttMs;
    private long _rttvarMs;
    private int _retries;
    private uint _rttSeq;
    private long _rttStart;
    private long _timeWaitUntil;

    public TcpConnection(Gateway gateway, TcpNat table, FlowKeyTcp key)
    {
        _gateway = gateway;
        _table = table;
        Key = key;
        var capacity = gateway.Options.EffectiveTcpBufferBytes;
        _toHost = new ByteRing(capacity);
        _toGuest = new ByteRing(capacity);
        while (capacity >> _receiveShift > 65535)
        {
            _receiveShift++;
        }

        _mss = gateway.Options.Mtu - 40;
    }

    private enum State
    {
        Connecting,
        SynReceived,
        SynSent,
        Established,
        TimeWait,
        Closed,
    }

    public FlowKeyTcp Key { get; }

    /// <summary>Queued in the gateway's flush list; written under the gateway lock.</summary>
    public bool FlushQueued { get; set; }

    /// <summary>Queued in the gateway's end-of-batch ACK list; written under the gateway lock.</summary>
    public bool AckQueued { get; set; }

    public bool InTimeWait => _state == State.TimeWait;

    /// <summary>The connection's state in one line, for test failures and debugging. Caller holds the gateway lock.</summary>
    public string Describe() =>
        $"{_state}: snd una {_sndUna - _iss} nxt {_sndNxt - _iss} max {_sndMax - _iss} wnd {_sndWnd} to-guest {_toGuest.Count} host-eof {_hostEof} " +
        $"fin {_finSent}/{_finAcked}; rcv {_rcvNxt} to-host {_toHost.Count} guest-fin {_guestFin}; rto {_rtoDeadline} ({_rtoMs} ms, {_retries} tries), " +
        $"loops {_loopsRunning}, flush queued {FlushQueued}";

    /// <summary>Free bytes towards the guest worth a host socket read: a quarter of the ring, at most 64 KiB.</summary>
    private int ReceiveThreshold => Math.Min(_toGuest.Capacity / 4, 64 * 1024);

    private bool HalfOpen => _state is State.Connecting or State.SynReceived or State.SynSent;

    /// <summary>The guest's SYN: connect to the host first. Caller holds the gateway lock.</summary>
    public void StartPassive(uint guestIsn, TcpOptions options, IPEndPoint target) =>
        StartPassive(guestIsn, options, cancellationToken => ConnectHostAsync(target, cancellationToken));

    /// <summary>
    /// The guest's SYN to a virtual service: <paramref name="connect"/> gives the far side (a
    /// connected stream socket), or faults for a refusal. Caller holds the gateway lock.
    /// </summary>
    public void StartPassive(uint guestIsn, TcpOptions options, Func<CancellationToken, Task<Socket>> connect)
    {
        _state = State.Connecting;
        _rcvNxt = guestIsn + 1;
        ApplyOptions(options);
        _ = ConnectAsync(connect);
    }

    private static async Task<Socket> ConnectHostAsync(IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(target, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A host forward: SYN to the guest over an accepted socket. Caller holds the gateway lock.</summary>
    public void StartActive(Socket accepted)
    {
        _host = accepted;
        _state = State.SynSent;
        _sendShift = 0;
        ChooseIss();
        SendSyn(TcpNat.Syn);
        ArmRto(_gateway.NowMs);
        _gateway.Counters.TcpOpen();
    }

    private void ApplyOptions(TcpOptions options)
    {
        _mss = Math.Min(options.Mss, _gateway.Options.Mtu - 40);
        _sendShift = options.WindowScale;
    }

    private void ChooseIss()
    {
        _iss = (uint)Random.Shared.Next();
        _sndUna = _iss;
        _sndNxt = _iss + 1;
        _sndMax = _sndNxt;
    }

    private async Task ConnectAsync(Func<CancellationToken, Task<Socket>> connect)
    {
        Socket socket;
        try
        {
            socket = await connect(_gateway.Stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
        {
            lock (_gateway.Sync)
            {
                if (_state == State.Connecting)
                {
                    _gateway.Counters.TcpRefuse();
                    _table.SendReset(Key, 0, _rcvNxt, TcpNat.Rst | TcpNat.AckFlag);
                    Release();
                }
            }

            return;
        }

        lock (_gateway.Sync)
        {
            if (_state != State.Connecting)
            {
                socket.Dispose();
                return;
            }

            _host = socket;
            _state = State.SynReceived;
            _gateway.Counters.TcpOpen();
            ChooseIss();
            SendSyn(TcpNat.Syn | TcpNat.AckFlag);
            ArmRto(_gateway.NowMs);
        }
    }

    /// <summary>One segment from the guest for this connection. Caller holds the gateway lock.</summary>
    public void OnSegment(TcpSegment segment, ReadOnlySpan<byte> options, ReadOnlySpan<byte> data)
    {
        var flags = segment.Flags;
        if ((flags & TcpNat.Rst) != 0)
        {
            // RFC 5961 3: only an in-window RST is accepted.
            if (_state is State.Connecting or State.SynSent || InReceiveWindow(segment.Seq))
            {
                Abort(sendReset: false);
            }
            else
            {
                _gateway.Counters.Drop(StackDrop.OutOfWindow);
            }

            return;
        }

        switch (_state)
        {
            case State.Connecting:
                // A retransmitted SYN while the host connect is pending.
                return;

            case State.SynSent:
                if ((flags & (TcpNat.Syn | TcpNat.AckFlag)) == (TcpNat.Syn | TcpNat.AckFlag) && segment.Ack == _iss + 1)
                {
                    if (!TcpOptions.TryParse(options, out var parsed))
                    {
                        _gateway.Counters.Drop(StackDrop.BadOptions);
                        return;
                    }

                    _rcvNxt = segment.Seq + 1;
                    ApplyOptions(parsed);
                    _sndUna = segment.Ack;
                    _sndWnd = segment.Window;
                    Establish();
                    SendAck();
                }

                return;

            case State.SynReceived:
                if ((flags & TcpNat.Syn) != 0)
                {
                    SendSyn(TcpNat.Syn | TcpNat.AckFlag);
                    return;
                }

                if ((flags & TcpNat.AckFlag) == 0 || segment.Ack != _iss + 1)
                {
                    _gateway.Counters.Drop(StackDrop.OutOfWindow);
                    return;
                }

                _sndUna = segment.Ack;
                _sndWnd = GuestWindow(segment.Window);
                Establish();
                break;

            case State.TimeWait:
                if ((flags & TcpNat.Fin) != 0)
                {
                    SendAck();
                }

                return;

            case State.Closed:
                return;
        }

        if ((flags & TcpNat.Syn) != 0)
        {
            // RFC 5961 4: a SYN on an established connection gets a challenge ACK.
            SendAck();
            return;
        }

        if ((flags & TcpNat.AckFlag) != 0)
        {
            OnAck(segment, data.Length == 0 && (flags & TcpNat.Fin) == 0);
        }

        if (_state == State.Closed)
        {
            return;
        }

        if (data.Length > 0 || (flags & TcpNat.Fin) != 0)
        {
            OnData(segment.Seq, data, (flags & TcpNat.Fin) != 0);
        }

        TrySendData();
        CheckClosed();
    }

    private void Establish()
    {
        _state = State.Established;
        _table.HalfOpen--;
        _retries = 0;
        _rtoDeadline = 0;
        _loopsRunning = 2;
        _ = HostReceiveLoopAsync();
        _ = HostSendLoopAsync();
    }

    private bool InReceiveWindow(uint seq)
    {
        var window = (uint)Math.Max(_toHost.Free, 1);
        return seq - _rcvNxt < window;
    }

    private void OnAck(TcpSegment segment, bool pureAck)
    {
        var ack = segment.Ack;
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
            if (dataAcked > 0 && _toGuest.Free >= ReceiveThreshold)
            {
                _toGuestRoom.Set();
            }
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
            _toHostReady.Set();
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

                var length = (int)Math.Min(Math.Min(unsent, usable), _mss);
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

                SendSegment(_sndNxt, TcpNat.Fin | TcpNat.AckFlag, 0, 0);
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
        SendSegment(seq, (byte)(TcpNat.AckFlag | (last ? TcpNat.Psh : 0)), offset, length);
        if (_rtoDeadline == 0)
        {
            ArmRto(now);
        }
    }

    private void SendAck() => SendSegment(_sndNxt, TcpNat.AckFlag, 0, 0);

    private void SendSyn(byte flags)
    {
        // MSS (4 bytes), then NOP + window scale (3 bytes) when the guest offered scaling.
        var scale = flags == TcpNat.Syn || _sendShift >= 0;
        var headerLength = scale ? 28 : 24;
        var frame = _gateway.RentIpv4(headerLength);
        var tcp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        var window = (ushort)Math.Min(_toHost.Free, 65535);
        TcpNat.WriteHeader(tcp, Key, _iss, flags == TcpNat.Syn ? 0 : _rcvNxt, flags, window, headerLength);
        tcp[20] = 2;
        tcp[21] = 4;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(tcp[22..], (ushort)(_gateway.Options.Mtu - 40));
        if (scale)
        {
            tcp[24] = 1;
            tcp[25] = 3;
            tcp[26] = 3;
            tcp[27] = (byte)_receiveShift;
        }

        if (flags == TcpNat.Syn)
        {
            _sendShift = -1;
        }

        TcpNat.FinishChecksum(tcp, Key);
        _gateway.EmitIpv4(frame, Gateway.ProtocolTcp, Key.RemoteIp, Key.GuestIp);
    }

    private void SendSegment(uint seq, byte flags, int ringOffset, int length)
    {
        var frame = _gateway.RentIpv4(20 + length);
        var tcp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        var free = _toHost.Free;
        var shift = Math.Max(_receiveShift, 0);
        if (_sendShift < 0)
        {
            // No window scaling on this connection (RFC 7323 2.2: both sides must offer it).
            shift = 0;
        }

        var window = (ushort)Math.Min(free >> shift, 65535);
        _lastWindow = window << shift;
        TcpNat.WriteHeader(tcp, Key, seq, _rcvNxt, flags, window, 20);
        if (length > 0)
        {
            _toGuest.CopyTo(ringOffset, tcp.Slice(20, length));
        }

        TcpNat.FinishChecksum(tcp, Key);
        _unackedSegments = 0;
        _rcvAcked = _rcvNxt;
        _gateway.EmitIpv4(frame, Gateway.ProtocolTcp, Key.RemoteIp, Key.GuestIp);
    }

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
            if (now >= _timeWaitUntil)
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
                SendSyn(TcpNat.Syn | TcpNat.AckFlag);
                _gateway.Counters.Retransmit();
                ArmRto(now);
                return;
            case State.SynSent:
                SendSyn(TcpNat.Syn);
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
                SendSegment(_sndUna, TcpNat.AckFlag, 0, 1);
            }
            else
            {
                SendSegment(_sndUna, TcpNat.Fin | TcpNat.AckFlag, 0, 0);
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
            SendSegment(_sndNxt, TcpNat.AckFlag, (int)(_sndNxt - _sndUna), 1);
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

    private async Task HostReceiveLoopAsync()
    {
        var cancellationToken = _gateway.Stopping;
        try
        {
            while (true)
            {
                Memory<byte> room;
                Socket? socket;
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed or State.TimeWait)
                    {
                        return;
                    }

                    // Only a worthwhile read: waking for the few KiB each ACK frees would cost a
                    // socket read per ACK.
                    room = _toGuest.Free >= ReceiveThreshold ? _toGuest.Writable() : Memory<byte>.Empty;
                    socket = _host;
                }

                if (socket is null)
                {
                    return;
                }

                if (room.Length == 0)
                {
                    await _toGuestRoom.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                var received = await socket.ReceiveAsync(room, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed)
                    {
                        return;
                    }

                    if (received == 0)
                    {
                        _hostEof = true;
                        TrySendData();
                        CheckClosed();
                        return;
                    }

                    _toGuest.Commit(received);
                    TrySendData();
                }
            }
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
        {
            lock (_gateway.Sync)
            {
                if (_state is not (State.Closed or State.TimeWait))
                {
                    Abort(sendReset: true);
                }
            }
        }
        finally
        {
            LoopEnded();
        }
    }

    private async Task HostSendLoopAsync()
    {
        var cancellationToken = _gateway.Stopping;
        try
        {
            while (true)
            {
                Memory<byte> pending;
                Socket? socket;
                bool shutdown;
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed)
                    {
                        return;
                    }

                    pending = _toHost.Readable();
                    socket = _host;
                    shutdown = pending.Length == 0 && _guestFin;
                }

                if (socket is null)
                {
                    return;
                }

                if (shutdown)
                {
                    socket.Shutdown(SocketShutdown.Send);
                    return;
                }

                if (pending.Length == 0)
                {
                    await _toHostReady.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                var sent = await socket.SendAsync(pending, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed)
                    {
                        return;
                    }

                    var before = _lastWindow;
                    _toHost.Consume(sent);

                    // A window update once the buffer has drained a quarter since the last advertisement
                    // (RFC 9293 3.8.6.2.2 receiver-side SWS avoidance).
                    if (_state == State.Established && _toHost.Free - before >= Math.Max(_toHost.Capacity / 4, _mss))
                    {
                        if (_gateway.CanEmit)
                        {
                            SendAck();
                        }
                        else
                        {
                            _unackedSegments++;
                            _gateway.RequestFlush(this);
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
        {
            lock (_gateway.Sync)
            {
                if (_state is not (State.Closed or State.TimeWait))
                {
                    Abort(sendReset: true);
                }
            }
        }
        finally
        {
            LoopEnded();
        }
    }

    private void LoopEnded()
    {
        lock (_gateway.Sync)
        {
            if (--_loopsRunning == 0 && _state is State.TimeWait or State.Closed)
            {
                DisposeHost(reset: false);
                if (_state == State.Closed)
                {
                    _toHost.Return();
                    _toGuest.Return();
                }
            }
        }
    }

    private void CheckClosed()
    {
        if (_state == State.Established && _guestFin && _finAcked)
        {
            _state = State.TimeWait;
            _rtoDeadline = 0;
            _timeWaitUntil = _gateway.NowMs + (long)_gateway.Options.TimeWait.TotalMilliseconds;
            _toHostReady.Set();
            _toGuestRoom.Set();
            if (_loopsRunning == 0)
            {
                DisposeHost(reset: false);
            }
        }
    }

    /// <summary>Ends the connection at once: RST to the guest (when asked) and to the host. Caller holds the gateway lock.</summary>
    public void Abort(bool sendReset)
    {
        if (_state == State.Closed)
        {
            return;
        }

        if (sendReset && _state is State.Established or State.SynReceived)
        {
            SendSegment(_sndNxt, TcpNat.Rst | TcpNat.AckFlag, 0, 0);
        }

        DisposeHost(reset: true);
        Release();
    }

    /// <summary>Leaves the table and returns the buffers. Caller holds the gateway lock.</summary>
    public void Release()
    {
        if (_state == State.Closed)
        {
            return;
        }

        if (HalfOpen)
        {
            _table.HalfOpen--;
        }

        _state = State.Closed;
        _table.Remove(this);
        _toHostReady.Set();
        _toGuestRoom.Set();
        if (_loopsRunning == 0)
        {
            DisposeHost(reset: _host is not null && !(_guestFin && _finAcked));
            _toHost.Return();
            _toGuest.Return();
        }
        else
        {
            // The loops still hold ring memory; the socket's disposal ends them.
            DisposeHost(reset: !(_guestFin && _finAcked));
        }
    }

    private void DisposeHost(bool reset)
    {
        var socket = _host;
        _host = null;
        if (socket is null)
        {
            return;
        }

        try
        {
            if (reset)
            {
                socket.LingerState = new LingerOption(true, 0);
            }
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }

        socket.Dispose();
    }
}
