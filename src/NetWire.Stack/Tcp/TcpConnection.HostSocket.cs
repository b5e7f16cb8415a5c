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

            // The send loop writes without blocking (see HostSendLoopAsync).
            socket.Blocking = false;
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
        var cancellationToken = _gateway.LoopToken;
        try
        {
            while (true)
            {
                Memory<byte> room;
                Socket? socket;
                var eof = false;
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed or State.TimeWait || _gateway.Frozen)
                    {
                        return;
                    }

                    // Only a worthwhile read: waking for the few KiB each ACK frees would cost a
                    // socket read per ACK.
                    room = _toGuest.Free >= ReceiveThreshold ? _toGuest.Writable() : Memory<byte>.Empty;
                    if (_bytesUntilEof >= 0)
                    {
                        // A migrated host FIN: the stream ends after the bytes that were queued with it.
                        eof = _bytesUntilEof == 0;
                        room = room[..(int)Math.Min(room.Length, _bytesUntilEof)];
                    }

                    socket = _host;
                }

                if (socket is null)
                {
                    return;
                }

                var received = 0;
                if (!eof)
                {
                    if (room.Length == 0)
                    {
                        await _toGuestRoom.WaitAsync(cancellationToken).ConfigureAwait(false);
                        continue;
                    }

                    received = await socket.ReceiveAsync(room, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }

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

                    if (_bytesUntilEof > 0)
                    {
                        _bytesUntilEof -= received;
                    }

                    _toGuest.Commit(received);
                    TrySendData();
                }
            }
        }
        catch (OperationCanceledException) when (IsFrozen)
        {
            // A migration holds the connection still; it resumes or moves.
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
        {
            StackLog.HostSocketFailed(_gateway.Logger, Key.ToString(), ex.Message);
            OnHostLoopFailed();
        }
        finally
        {
            LoopEnded();
        }
    }

    /// <summary>
    /// Writes what the guest sent to the host socket. Writes are non-blocking; when the socket is
    /// full the loop waits for room with a one-byte send, which either goes out whole or not at
    /// all, so a freeze that cancels it knows exactly which bytes the kernel has (a cancelled
    /// larger send would not say how much of it was taken).
    /// </summary>
    private async Task HostSendLoopAsync()
    {
        var cancellationToken = _gateway.LoopToken;
        try
        {
            while (true)
            {
                ReadOnlyMemory<byte> pending;
                Socket? socket;
                bool shutdown;
                bool restored;
                lock (_gateway.Sync)
                {
                    if (_state is State.Closed || _gateway.Frozen)
                    {
                        return;
                    }

                    restored = _restoredUnsent.Length > 0;
                    pending = restored ? _restoredUnsent : _toHost.Readable();
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
                    lock (_gateway.Sync)
                    {
                        _hostShutdown = true;
                    }

                    return;
                }

                if (pending.Length == 0)
                {
                    await _toHostReady.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                var sent = socket.Send(pending.Span, SocketFlags.None, out var error);
                if (error == SocketError.WouldBlock)
                {
                    sent = await socket.SendAsync(pending[..1], SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                else if (error != SocketError.Success)
                {
                    throw new SocketException((int)error);
                }

                lock (_gateway.Sync)
                {
                    if (_state is State.Closed)
                    {
                        return;
                    }

                    if (restored)
                    {
                        _restoredUnsent = _restoredUnsent[sent..];
                        continue;
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
        catch (OperationCanceledException) when (IsFrozen)
        {
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
        {
            StackLog.HostSocketFailed(_gateway.Logger, Key.ToString(), ex.Message);
            OnHostLoopFailed();
        }
        finally
        {
            LoopEnded();
        }
    }

    private bool IsFrozen
    {
        get
        {
            lock (_gateway.Sync)
            {
                return _gateway.Frozen;
            }
        }
    }

    private void LoopEnded()
    {
        lock (_gateway.Sync)
        {
            _gateway.LoopEnded();
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
