using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;

namespace NetWire.Stack.Tcp;

/// <summary>The host side: the connect, and the loops that move bytes between the rings and the host socket.</summary>
internal sealed partial class TcpConnection
{
    private static async Task<Socket> ConnectHostAsync(IPEndPoint target, CancellationToken cancellationToken)
    {
        var socket = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
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
                    _table.SendReset(Key, 0, _rcvNxt, TcpFlags.Rst | TcpFlags.Ack);
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
            SendSyn(TcpFlags.Syn | TcpFlags.Ack);
            ArmRto(_gateway.NowMs);
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
            OnHostLoopFailed();
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
            OnHostLoopFailed();
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

    /// <summary>A host socket loop failed: the connection ends with a RST both ways unless it has already closed.</summary>
    private void OnHostLoopFailed()
    {
        lock (_gateway.Sync)
        {
            if (_state is not (State.Closed or State.TimeWait))
            {
                Abort(sendReset: true);
            }
        }
    }
}
