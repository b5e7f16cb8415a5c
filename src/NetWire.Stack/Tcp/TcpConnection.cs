using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

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
/// host forward): SYN to the guest, SYN-ACK back. The host socket is non-blocking and watched by
/// the gateway's poller (<see cref="HostPoller"/>): its readiness moves bytes between it and the
/// rings on the poller's thread, under the gateway lock, like everything else here.
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
/// This file holds the state and the segment dispatch; the receive side, the send side, the
/// timers and the host socket are in TcpConnection.Receive.cs, .Send.cs, .Timers.cs and .HostSocket.cs.
/// </remarks>
internal sealed partial class TcpConnection
{
    private const int MaxRetries = 12;
    private const long MinRtoMs = 200;
    private const long MaxRtoMs = 60_000;
    private const int MaxOutOfOrderRanges = 32;

    /// <summary>Data in one large segment left to the guest end to cut: 64 KiB less room for an IP header with options and a TCP header.</summary>
    private const int MaxLargeSegmentData = 65_535 - 80;

    private readonly Gateway _gateway;
    private readonly TcpNat _table;
    private readonly ByteRing _toHost;
    private readonly ByteRing _toGuest;
    private readonly List<(uint Start, uint End)> _outOfOrder = [];

    /// <summary>The window shift we announced in our SYN (RFC 7323 2.2); carried over by a migration.</summary>
    private int _receiveShift;

    /// <summary>The pseudo-header of every segment towards the guest (the remote side to the guest).</summary>
    private readonly PseudoHeader _toGuestPseudoHeader;

    /// <summary>Where the TCP header starts in a frame towards the guest (after an IPv4 or IPv6 header).</summary>
    private readonly int _segmentOffset;

    /// <summary>The largest segment the link carries: the MTU less the IP and TCP headers (40 over IPv4, 60 over IPv6).</summary>
    private readonly int _linkMss;

    private State _state;

    // Host socket, watched by the gateway's poller.
    private HostSocket? _host;
    private ulong _pollToken;

    /// <summary>The host socket is registered with the poller (<see cref="_pollToken"/> is live).</summary>
    private bool _watched;

    /// <summary>Readiness the poller reported while the gateway was frozen, run by <see cref="Resume"/>.</summary>
    private uint _deferredEvents;

    private bool _connectPending;
    private bool _hostReadable;
    private bool _hostWritable;

    /// <summary>shutdown(SHUT_WR) was called on the host socket (the guest's FIN went on).</summary>
    private bool _hostShutdown;

    /// <summary>The poller reports the host socket's output readiness (from the start, or since a send met EAGAIN).</summary>
    private bool _watchingOutput;

    /// <summary>Host bytes still to read before the host stream ends (a migrated peer FIN); -1 when the kernel says so itself.</summary>
    private long _bytesUntilEof = -1;

    /// <summary>The unsent tail of a migrated host socket's send queue, written before <see cref="_toHost"/>.</summary>
    private ReadOnlyMemory<byte> _restoredUnsent;

    /// <summary>
    /// The rest of the host's stream when its socket was closed both ways at a migration (no socket
    /// is restored): read into <see cref="_toGuest"/> as if from the socket, then the host's EOF.
    /// </summary>
    private ReadOnlyMemory<byte> _hostTail;

    /// <summary><see cref="_hostTail"/> is the host side (it may be empty, with the EOF still to take).</summary>
    private bool _hasHostTail;

    /// <summary>A restored host socket still in repair mode, until the migration activates it.</summary>
    private TcpRepairState? _repair;

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

    public TcpConnection(Gateway gateway, TcpNat table, FlowKey key)
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

        _segmentOffset = Gateway.PayloadOffset(key.GuestIp);
        _linkMss = gateway.Options.Mtu - Gateway.IpHeaderLength(key.GuestIp) - TcpPacket.MinHeaderLength;
        _mss = _linkMss;
        _toGuestPseudoHeader = PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Tcp);
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

    public FlowKey Key { get; }

    /// <summary>Queued in the gateway's flush list; written under the gateway lock.</summary>
    public bool FlushQueued { get; set; }

    /// <summary>Queued in the gateway's end-of-batch ACK list; written under the gateway lock.</summary>
    public bool AckQueued { get; set; }

    /// <summary>
    /// In TIME-WAIT with nothing left for the host: a full table may evict it. One whose socket is
    /// still open holds guest bytes or the FIN the host has not taken, which an eviction would lose
    /// (docs/migration.md, "Closing connections": TIME-WAIT does not end while they wait).
    /// </summary>
    public bool Evictable => _state == State.TimeWait && _host is null;

    /// <summary>In TIME-WAIT, a SYN whose sequence number is past the old connection's: a new connection on the same ports.</summary>
    public bool TakesNewSyn(uint sequence) => _state == State.TimeWait && (int)(sequence - _rcvNxt) > 0;

    /// <summary>Bytes of ring buffer the connection holds now (none while idle). Caller holds the gateway lock.</summary>
    public long BufferBytes => _toHost.BufferBytes + _toGuest.BufferBytes;

    /// <summary>The connection's state in one line, for test failures and debugging. Caller holds the gateway lock.</summary>
    public string Describe() =>
        $"{_state}: snd una {_sndUna - _iss} nxt {_sndNxt - _iss} max {_sndMax - _iss} wnd {_sndWnd} to-guest {_toGuest.Count} host-eof {_hostEof} " +
        $"fin {_finSent}/{_finAcked}; rcv {_rcvNxt} to-host {_toHost.Count} guest-fin {_guestFin}; rto {_rtoDeadline} ({_rtoMs} ms, {_retries} tries), " +
        $"host {(_host is null ? _hasHostTail ? $"tail {_hostTail.Length}" : "closed" : $"r {_hostReadable} w {_hostWritable} shut {_hostShutdown} kernel {TcpRepair.KernelState(_host.Socket)}")}, flush queued {FlushQueued}";

    /// <summary>Free bytes towards the guest worth a host socket read: a quarter of the ring, at most 64 KiB.</summary>
    private int ReceiveThreshold => Math.Min(_toGuest.Capacity / 4, 64 * 1024);

    private bool HalfOpen => _state is State.Connecting or State.SynReceived or State.SynSent;

    /// <summary>The guest's SYN: connect to the host first. Caller holds the gateway lock.</summary>
    public void StartPassive(uint guestIsn, TcpOptions options, IPEndPoint target)
    {
        _state = State.Connecting;
        _rcvNxt = guestIsn + 1;
        ApplyOptions(options);
        BeginConnect(target);
    }

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

    /// <summary>A host forward: SYN to the guest over an accepted socket. Caller holds the gateway lock.</summary>
    public void StartActive(Socket accepted)
    {
        Attach(HostSocket.Adopt(accepted));
        _hostWritable = true;
        _state = State.SynSent;
        _sendShift = 0;
        ChooseIss();
        SendSyn(TcpFlags.Syn);
        ArmRto(_gateway.NowMs);
        _gateway.Counters.TcpOpen();
    }

    private void ApplyOptions(TcpOptions options)
    {
        // RFC 9293 3.7.1: 536 when the guest sends no MSS; RFC 7323 2.3: a shift over 14 is taken as 14.
        // RFC 8200 8.3: 1220 for IPv6 when the guest sends no MSS (its minimum MTU less 60).
        var assumed = Key.GuestIp.IsIpv4 ? 536 : 1220;
        _mss = Math.Min(Math.Max(64, (int)(options.MaxSegmentSize ?? (ushort)assumed)), _linkMss);
        _sendShift = options.WindowScale is { } shift ? Math.Min((int)shift, 14) : -1;
    }

    private void ChooseIss()
    {
        _iss = (uint)Random.Shared.Next();
        _sndUna = _iss;
        _sndNxt = _iss + 1;
        _sndMax = _sndNxt;
    }

    /// <summary>One segment from the guest for this connection. Caller holds the gateway lock.</summary>
    public void OnSegment(TcpPacket segment)
    {
        var flags = segment.Flags;
        var data = segment.Payload;
        if ((flags & TcpFlags.Rst) != 0)
        {
            // RFC 5961 3: only an in-window RST is accepted.
            if (_state is State.Connecting or State.SynSent || InReceiveWindow(segment.SequenceNumber))
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
                if ((flags & (TcpFlags.Syn | TcpFlags.Ack)) == (TcpFlags.Syn | TcpFlags.Ack) && segment.AckNumber == _iss + 1)
                {
                    if (!TcpOptions.TryParse(segment.Options, out var parsed))
                    {
                        _gateway.Counters.Drop(StackDrop.BadOptions);
                        return;
                    }

                    _rcvNxt = segment.SequenceNumber + 1;
                    ApplyOptions(parsed);
                    _sndUna = segment.AckNumber;
                    _sndWnd = segment.Window;
                    Establish();
                    SendAck();
                }

                return;

            case State.SynReceived:
                if ((flags & TcpFlags.Syn) != 0)
                {
                    SendSyn(TcpFlags.Syn | TcpFlags.Ack);
                    return;
                }

                if ((flags & TcpFlags.Ack) == 0 || segment.AckNumber != _iss + 1)
                {
                    _gateway.Counters.Drop(StackDrop.OutOfWindow);
                    return;
                }

                _sndUna = segment.AckNumber;
                _sndWnd = GuestWindow(segment.Window);
                Establish();
                break;

            case State.TimeWait:
                if ((flags & TcpFlags.Fin) != 0)
                {
                    SendAck();
                }

                return;

            case State.Closed:
                return;
        }

        if ((flags & TcpFlags.Syn) != 0)
        {
            // RFC 5961 4: a SYN on an established connection gets a challenge ACK.
            SendAck();
            return;
        }

        if ((flags & TcpFlags.Ack) != 0)
        {
            OnAck(segment, data.Length == 0 && (flags & TcpFlags.Fin) == 0);
        }

        if (_state == State.Closed)
        {
            return;
        }

        if (data.Length > 0 || (flags & TcpFlags.Fin) != 0)
        {
            OnData(segment.SequenceNumber, data, (flags & TcpFlags.Fin) != 0);
        }

        TrySendData();
        CheckClosed();

        // The guest's ACKs may have made room towards it for a host socket that has data.
        ReadHost();
    }

    private void Establish()
    {
        _state = State.Established;
        _table.HalfOpen--;
        _retries = 0;
        _rtoDeadline = 0;

        // Readiness that came before the handshake finished was remembered.
        ReadHost();
    }

    private void CheckClosed()
    {
        if (_state == State.Established && _guestFin && _finAcked)
        {
            _state = State.TimeWait;
            _rtoDeadline = 0;
            _timeWaitUntil = _gateway.NowMs + (long)_gateway.Options.TimeWait.TotalMilliseconds;
            _toGuest.ReleaseIfEmpty();
            CloseHostAfterTimeWait();
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
            SendSegment(_sndNxt, TcpFlags.Rst | TcpFlags.Ack, 0, 0);
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
        DisposeHost(reset: !(_guestFin && _finAcked));
        _toHost.Return();
        _toGuest.Return();
    }
}
