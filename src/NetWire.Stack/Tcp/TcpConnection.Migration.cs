using System.Net.Sockets;
using NetWire.Stack.Migration;

namespace NetWire.Stack.Tcp;

/// <summary>
/// The connection's part in a migration (docs/migration.md, "Gateway flows"): on the source its
/// state is read while the gateway is frozen, then it is handed over (its host socket closed in
/// repair mode, silently) or reset; on the target it is rebuilt from that state, held until the
/// source has let go, then activated.
/// </summary>
internal sealed partial class TcpConnection
{
    /// <summary>Where the far side is; set when the connection is made.</summary>
    public TcpFlowOrigin Origin { get; set; }

    /// <summary>
    /// The host side stays with this gateway: a guest forward's (its far side is a local command
    /// or a connection the target's options need not have). Set when the connection is made.
    /// A host forward's connection moves, whether the forward came from the options or was added
    /// while the gateway ran (those forwards travel too: <see cref="Migration.ForwardStateSection"/>).
    /// </summary>
    public bool HostStays { get; set; }

    /// <summary>Source: why the connection cannot move, or null when it can. Caller holds the gateway lock.</summary>
    public FlowResetReason? MigrationBlocker => _state switch
    {
        State.Established or State.TimeWait when HostStays && _host is not null => FlowResetReason.HostState,
        State.Established or State.TimeWait => null,
        _ => FlowResetReason.Handshake,
    };

    /// <summary>
    /// Source: the host socket to lock and dump, or null when the connection has none to move (a
    /// tunnel connection, or a host side finished both ways: the host's EOF read and the guest's
    /// bytes and FIN written). A connection in TIME-WAIT towards the guest whose bytes to the host
    /// are not all written keeps its socket, which moves. Caller holds the gateway lock.
    /// </summary>
    public Socket? MovableHost => _state is State.Established or State.TimeWait && Origin != TcpFlowOrigin.Virtual && !(_hostEof && _hostShutdown) ? _host?.Socket : null;

    /// <summary>The far side of a connection to a virtual service (a socket pair's end), or null. Caller holds the gateway lock.</summary>
    public Socket? VirtualSocket => Origin == TcpFlowOrigin.Virtual ? _host?.Socket : null;

    /// <summary>shutdown(SHUT_WR) was called on the host socket. Caller holds the gateway lock.</summary>
    public bool HostShutdown => _hostShutdown;

    /// <summary>Source: the connection's state, with its host socket's dump. Caller holds the gateway lock; the gateway is frozen.</summary>
    public TcpFlowState Export(TcpRepairState? host, long nowMs)
    {
        if (host is not null && _bytesUntilEof >= 0)
        {
            // A FIN carried over by an earlier migration still ends the queued bytes.
            host = host with { PeerFin = true };
        }

        if (host is not null && _restoredUnsent.Length > 0)
        {
            // An earlier migration's unsent tail, not yet written: it still goes before _toHost.
            host = host with { SendQueue = [.. host.SendQueue, .. _restoredUnsent.Span], Unsent = host.Unsent + _restoredUnsent.Length };
        }

        // A socket closed both ways moves as what is left to read of the host's stream.
        var tail = host is { Closed: true } ? host.RecvQueue : _hasHostTail ? _hostTail.ToArray() : null;
        if (host is { Closed: true })
        {
            host = null;
        }

        return new TcpFlowState
        {
            Key = Key,
            Origin = Origin,
            TimeWait = _state == State.TimeWait,
            Iss = _iss,
            SndUna = _sndUna,
            SndNxt = _sndNxt,
            SndMax = _sndMax,
            SndWnd = _sndWnd,
            SendShift = _sendShift,
            ReceiveShift = _receiveShift,
            Mss = _mss,
            RcvNxt = _rcvNxt,
            GuestFin = _guestFin,
            HostEof = _hostEof,
            FinSent = _finSent,
            FinAcked = _finAcked,
            HostShutdown = _hostShutdown,
            RtoMs = _rtoMs,
            SrttMs = _srttMs,
            RttvarMs = _rttvarMs,
            TimeWaitLeftMs = _state == State.TimeWait ? Math.Max(0, _timeWaitUntil - nowMs) : 0,
            ToGuest = _toGuest.ToArray(),
            ToHost = _toHost.ToArray(),
            Host = host,
            HostTail = tail,
        };
    }

    /// <summary>Source: the numbers of the RST the target sends the guest for this connection. Caller holds the gateway lock.</summary>
    public ResetFlowState ResetState(FlowResetReason reason) => new(Key, _sndNxt, _rcvNxt, reason);

    /// <summary>
    /// Source: the target took the connection. Its host socket, still in repair mode, closes
    /// without a FIN or RST, and the connection leaves the table. Caller holds the gateway lock.
    /// </summary>
    public void HandOver()
    {
        DisposeHost(reset: false);
        Release();
    }

    /// <summary>
    /// Source: the connection does not move: the host peer gets a RST (the guest gets its own from
    /// the target). <paramref name="inRepair"/> when the socket was put in repair mode, whose close
    /// would be silent. Caller holds the gateway lock.
    /// </summary>
    public void ResetHost(bool inRepair)
    {
        if (inRepair && _host is { } socket)
        {
            TcpRepair.Resume(socket.Socket);
        }

        Abort(sendReset: false);
    }

    /// <summary>
    /// Target: a connection from a migration, its host socket restored and still in repair mode
    /// (null for none); it stays still until <see cref="ActivateMigrated"/>. Caller holds the gateway lock.
    /// </summary>
    public static TcpConnection Import(Gateway gateway, TcpNat table, TcpFlowState state, Socket? host)
    {
        var connection = new TcpConnection(gateway, table, state.Key) { Origin = state.Origin };
        connection.Adopt(state, host);
        return connection;
    }

    /// <summary>
    /// Target: the source has let go. The host socket leaves repair mode and the gateway's poller
    /// watches it from here on (its readiness runs when the gateway thaws), and what the guest may
    /// have missed (frames queued towards it on the source) is sent again at once instead of
    /// after a retransmission timeout. Caller holds the gateway lock.
    /// </summary>
    public void ActivateMigrated()
    {
        if (_repair is { } repair && _host is { } socket)
        {
            _repair = null;
            try
            {
                _restoredUnsent = TcpRepair.Activate(socket.Socket, repair);
            }
            catch (TcpRepairException)
            {
                Abort(sendReset: true);
                return;
            }
        }

        WatchAgain();

        if (_state != State.Established)
        {
            return;
        }

        // The host's stream carried as bytes (its socket closed both ways on the source).
        ReadHost();

        _sndNxt = _sndUna;
        if (!_finAcked)
        {
            _finSent = false;
        }

        _duplicateAcks = 0;
        _retries = 0;
        _rtoDeadline = 0;
        _rttStart = 0;
        SendAck();
        TrySendData();
        if (_sndMax != _sndUna && _rtoDeadline == 0)
        {
            ArmRto(_gateway.NowMs);
        }
    }

    private void Adopt(TcpFlowState state, Socket? host)
    {
        _receiveShift = state.ReceiveShift;
        _iss = state.Iss;
        _sndUna = state.SndUna;
        _sndNxt = state.SndNxt;
        _sndMax = state.SndMax;
        _sndWnd = state.SndWnd;
        _sendShift = state.SendShift;
        _mss = state.Mss;
        _rcvNxt = state.RcvNxt;
        _rcvAcked = state.RcvNxt;
        _guestFin = state.GuestFin;
        _hostEof = state.HostEof;
        _finSent = state.FinSent;
        _finAcked = state.FinAcked;
        // A virtual service's far side is a new socket pair's end, not a restored socket: a
        // shutdown done on the source is done again on it, so the tunnel reads the end of the stream.
        var isVirtual = state.Origin == TcpFlowOrigin.Virtual;
        _hostShutdown = state.HostShutdown && (host is null || isVirtual);
        if (isVirtual && _hostShutdown && host is not null)
        {
            host.Shutdown(SocketShutdown.Send);
        }

        _rtoMs = Math.Max(state.RtoMs, MinRtoMs);
        _srttMs = state.SrttMs;
        _rttvarMs = state.RttvarMs;
        _toGuest.Append(state.ToGuest);
        _toHost.Append(state.ToHost);
        _lastWindow = _toHost.Free;
        // Not watched by the poller before ActivateMigrated: the socket is in repair mode until then.
        _host = host is null ? null : HostSocket.Adopt(host);
        _repair = host is null || isVirtual ? null : state.Host;
        if (host is not null && !isVirtual)
        {
            if (state.Host!.PeerFin)
            {
                _bytesUntilEof = state.Host.RecvQueue.Length;
            }
        }

        if (state.HostTail is { } tail)
        {
            _hostTail = tail;
            _hasHostTail = true;
        }

        if (state.TimeWait)
        {
            _state = State.TimeWait;
            _timeWaitUntil = _gateway.NowMs + state.TimeWaitLeftMs;
        }
        else
        {
            _state = State.Established;
        }
    }
}
