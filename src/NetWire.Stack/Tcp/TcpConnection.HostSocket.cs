using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;

namespace NetWire.Stack.Tcp;

/// <summary>
/// The host side: the connect, and moving bytes between the rings and the host socket when the
/// gateway's poller says it is ready (<see cref="HostPoller"/>), all under the gateway lock.
/// While the gateway is frozen (a migration) readiness is only remembered, and the socket is
/// neither read nor written until <see cref="Resume"/>.
/// </summary>
internal sealed partial class TcpConnection : HostPoller.IHandler
{
    /// <summary>Opens the host socket and starts its connect (the guest's SYN to an outside address). Caller holds the gateway lock.</summary>
    private void BeginConnect(IPEndPoint target)
    {
        var socket = HostSocket.Connect(target, _gateway.Options.OutboundSourceFor(target.Address), out var connected, out _);
        if (socket is null)
        {
            Refuse();
            return;
        }

        try
        {
            // Output readiness only for a connect still pending (its outcome), else once a send meets EAGAIN.
            Attach(socket, watchOutput: !connected);
        }
        catch (IOException)
        {
            // The poller cannot watch one more descriptor: as good as a refused connect.
            socket.Close(reset: true);
            Refuse();
            return;
        }

        if (connected)
        {
            OnConnected();
        }
        else
        {
            _connectPending = true;
        }
    }

    /// <summary>A virtual service gives the far side (a connected socket) asynchronously.</summary>
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
                    Refuse();
                }
            }

            return;
        }

        lock (_gateway.Sync)
        {
            if (_state != State.Connecting || _gateway.Stopping.IsCancellationRequested)
            {
                socket.Dispose();
                return;
            }

            Attach(HostSocket.Adopt(socket));
            OnConnected();
        }
    }

    /// <summary>Watches an accepted or connected socket. Caller holds the gateway lock.</summary>
    private void Attach(HostSocket socket, bool watchOutput = true)
    {
        _pollToken = _gateway.Poller.Register(socket.Fd, this, watchOutput);
        _watchingOutput = watchOutput;
        _watched = true;
        _host = socket;
    }

    /// <summary>
    /// Stops watching the host socket (a migration is about to put it in repair mode, where a read
    /// or write would take bytes from its queues); readiness that comes meanwhile is lost, and
    /// <see cref="WatchAgain"/> assumes the socket ready both ways. Caller holds the gateway lock.
    /// </summary>
    public void StopWatching()
    {
        if (_watched && _host is { } socket)
        {
            _watched = false;
            _gateway.Poller.Unregister(_pollToken, socket.Fd);
        }
    }

    /// <summary>Watches the host socket again after <see cref="StopWatching"/> or a restore. Caller holds the gateway lock.</summary>
    public void WatchAgain()
    {
        if (_watched || _host is not { } socket || _state == State.Closed)
        {
            return;
        }

        try
        {
            // Output too: what the socket's send queue did while nobody watched is not known.
            _pollToken = _gateway.Poller.Register(socket.Fd, this, output: true);
            _watchingOutput = true;
            _watched = true;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            StackLog.HostSocketFailed(_gateway.Logger, Key.ToString(), ex.Message);
            Abort(sendReset: true);
            return;
        }

        // What came while nobody watched: a read or write finds out (EAGAIN costs nothing).
        _deferredEvents |= Interop.Libc.EpollIn | Interop.Libc.EpollOut;
    }

    /// <summary>Runs what readiness came while the gateway was frozen. Caller holds the gateway lock; the gateway runs.</summary>
    public void Resume()
    {
        var events = _deferredEvents;
        _deferredEvents = 0;
        if (events != 0)
        {
            OnReady(events);
        }
    }

    /// <summary>The host connect failed: RST to the guest, so a refused port is "connection refused" there.</summary>
    private void Refuse()
    {
        _gateway.Counters.TcpRefuse();
        _table.SendReset(Key, 0, _rcvNxt, TcpFlags.Rst | TcpFlags.Ack);
        Release();
    }

    /// <summary>The host connect succeeded: answer the guest's SYN. Caller holds the gateway lock.</summary>
    private void OnConnected()
    {
        _connectPending = false;
        _hostWritable = true;
        _state = State.SynReceived;
        _gateway.Counters.TcpOpen();
        ChooseIss();
        SendSyn(TcpFlags.Syn | TcpFlags.Ack);
        ArmRto(_gateway.NowMs);
    }

    /// <summary>The poller's readiness for the host socket. Caller (the poller) holds the gateway lock.</summary>
    public void OnReady(uint events)
    {
        if (_state == State.Closed || _host is null)
        {
            return;
        }

        if (_gateway.Frozen)
        {
            // A migration holds everything still: the readiness runs at the thaw (Resume).
            _deferredEvents |= events;
            return;
        }

        if (_connectPending)
        {
            if ((events & (Interop.Libc.EpollOut | Interop.Libc.EpollErr | Interop.Libc.EpollHup)) == 0)
            {
                return;
            }

            if (_host.PendingError() != 0)
            {
                Refuse();
                return;
            }

            OnConnected();
        }

        if ((events & (Interop.Libc.EpollIn | Interop.Libc.EpollRdHup | Interop.Libc.EpollHup | Interop.Libc.EpollErr)) != 0)
        {
            _hostReadable = true;
        }

        if ((events & (Interop.Libc.EpollOut | Interop.Libc.EpollHup | Interop.Libc.EpollErr)) != 0)
        {
            _hostWritable = true;
        }

        WriteHost();
        ReadHost();
    }

    /// <summary>
    /// Reads the host socket into the ring towards the guest while it has data and the ring has a
    /// worthwhile amount of room (a quarter: waking for the few KiB each ACK frees would cost a
    /// read per ACK), then sends what the guest's window allows. Caller holds the gateway lock.
    /// </summary>
    private void ReadHost()
    {
        if (_state != State.Established || _hostEof || _gateway.Frozen)
        {
            return;
        }

        if (_host is null)
        {
            if (_hasHostTail)
            {
                ReadTail();
            }

            return;
        }

        var read = false;
        while (_hostReadable && _toGuest.Free >= ReceiveThreshold)
        {
            var room = _toGuest.Writable();
            if (_bytesUntilEof >= 0)
            {
                // A migrated host FIN: the stream ends after the bytes that were queued with it.
                if (_bytesUntilEof == 0)
                {
                    _hostEof = true;
                    _hostReadable = false;
                    read = true;
                    break;
                }

                room = room[..(int)Math.Min(room.Length, _bytesUntilEof)];
            }

            var n = _host.Receive(room, out var errno);
            if (n > 0)
            {
                _toGuest.Commit((int)n);
                if (_bytesUntilEof > 0)
                {
                    _bytesUntilEof -= n;
                }

                read = true;
                continue;
            }

            if (n == 0)
            {
                _hostEof = true;
                _hostReadable = false;
                read = true;
                break;
            }

            if (errno == Interop.Libc.EAgain)
            {
                _hostReadable = false;
                break;
            }

            // Reset, timeout or another error on the host side: RST both ways.
            StackLog.HostSocketFailed(_gateway.Logger, Key.ToString(), Interop.Libc.Describe(errno));
            Abort(sendReset: true);
            return;
        }

        _toGuest.ReleaseIfEmpty();
        if (read)
        {
            TrySendData();
            CheckClosed();
        }
    }

    /// <summary>A migrated host stream without a socket (<see cref="_hostTail"/>): what fits towards the guest, then the EOF. Caller holds the gateway lock.</summary>
    private void ReadTail()
    {
        var n = Math.Min(_toGuest.Free, _hostTail.Length);
        if (n > 0)
        {
            _toGuest.Append(_hostTail.Span[..n]);
            _hostTail = _hostTail[n..];
        }

        if (_hostTail.Length == 0)
        {
            _hasHostTail = false;
            _hostEof = true;
        }

        if (n > 0 || _hostEof)
        {
            TrySendData();
            CheckClosed();
        }
    }

    /// <summary>
    /// Writes the ring towards the host while the socket takes bytes; once it is drained after the
    /// guest's FIN, shuts the socket's sending side down. Caller holds the gateway lock.
    /// </summary>
    private void WriteHost()
    {
        if (_host is null || _state is not (State.Established or State.TimeWait) || _gateway.Frozen)
        {
            return;
        }

        var sent = false;
        while (_hostWritable && (_restoredUnsent.Length > 0 || _toHost.Count > 0))
        {
            // A migrated socket's unsent bytes go first: the guest's bytes after them came later.
            var restored = _restoredUnsent.Length > 0;
            var n = _host.Send(restored ? _restoredUnsent.Span : _toHost.Readable(), out var errno);
            if (n > 0)
            {
                if (restored)
                {
                    _restoredUnsent = _restoredUnsent[(int)n..];
                    continue;
                }

                _toHost.Consume((int)n);
                sent = true;
                continue;
            }

            if (errno == Interop.Libc.EAgain)
            {
                _hostWritable = false;
                if (!_watchingOutput)
                {
                    _watchingOutput = true;
                    if (!_gateway.Poller.WatchOutput(_pollToken, _host.Fd))
                    {
                        Abort(sendReset: true);
                        return;
                    }
                }

                break;
            }

            StackLog.HostSocketFailed(_gateway.Logger, Key.ToString(), Interop.Libc.Describe(errno));
            Abort(sendReset: true);
            return;
        }

        if (_toHost.Count == 0 && _outOfOrder.Count == 0)
        {
            _toHost.ReleaseIfEmpty();
        }

        if (_toHost.Count == 0 && _restoredUnsent.Length == 0 && _guestFin && !_hostShutdown)
        {
            _hostShutdown = true;
            _host.ShutdownSend();
        }

        // A window update once the window could open by a quarter of the buffer since the last
        // advertisement (RFC 9293 3.8.6.2.2 receiver-side SWS avoidance).
        WindowField(out var window);
        if (sent && _state == State.Established && window - _lastWindow >= Math.Max(_toHost.Capacity / 4, _mss))
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

        CloseHostAfterTimeWait();
    }

    /// <summary>In TIME-WAIT the host socket has nothing left once the guest's bytes and FIN went out: close it.</summary>
    private void CloseHostAfterTimeWait()
    {
        if (_state == State.TimeWait && _hostShutdown && _toHost.Count == 0)
        {
            DisposeHost(reset: false);
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

        if (_watched)
        {
            _watched = false;
            _gateway.Poller.Unregister(_pollToken, socket.Fd);
        }

        socket.Close(reset);
    }
}
