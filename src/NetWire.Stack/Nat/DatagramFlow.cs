using System.Buffers;
using System.Net.Sockets;

namespace NetWire.Stack.Nat;

/// <summary>
/// A flow over one connected host datagram socket (a UDP flow, a relayed ping conversation):
/// datagrams from the guest are sent on it; its receive loop waits until the guest end can take
/// a frame before reading (backpressure; the kernel's socket buffer absorbs or drops what the
/// far side pushes meanwhile), then hands each datagram to <see cref="Deliver"/> under the
/// gateway lock.
/// </summary>
internal abstract class DatagramFlow(Gateway gateway, Socket socket)
{
    private const int MaxDatagram = 65_507;

    private int _closed;

    /// <summary>The receive loop runs; written under the gateway lock.</summary>
    private bool _receiving;

    /// <summary>Last traffic either way, in gateway milliseconds; written under the gateway lock.</summary>
    public long LastUsedMs { get; protected set; } = gateway.NowMs;

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    protected Gateway Gateway => gateway;

    protected Socket Socket => socket;

    /// <summary>Sends a datagram from the guest. Caller holds the gateway lock.</summary>
    public void Send(ReadOnlySpan<byte> payload, long nowMs)
    {
        LastUsedMs = nowMs;
        if (IsClosed)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
            return;
        }

        socket.Send(payload, SocketFlags.None, out var error);
        if (error != SocketError.Success)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
        }
    }

    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            socket.Dispose();
        }
    }

    /// <summary>The host socket's addresses (a migration carries them).</summary>
    public (System.Net.IPEndPoint Local, System.Net.IPEndPoint Remote)? EndPoints =>
        socket.LocalEndPoint is System.Net.IPEndPoint local && socket.RemoteEndPoint is System.Net.IPEndPoint remote ? (local, remote) : null;

    /// <summary>Starts the receive loop again after a freeze. Caller holds the gateway lock.</summary>
    public void Resume()
    {
        if (!IsClosed && !_receiving)
        {
            StartReceiving();
        }
    }

    /// <summary>Starts the receive loop (not while the gateway is frozen: <see cref="Resume"/> does then). Caller holds the gateway lock, or the flow is new.</summary>
    protected void StartReceiving()
    {
        if (gateway.Frozen)
        {
            return;
        }

        _receiving = true;
        gateway.LoopsStarted(1);
        _ = ReceiveLoopAsync();
    }

    /// <summary>One datagram from the host socket, towards the guest. Caller holds the gateway lock.</summary>
    protected abstract void Deliver(ReadOnlySpan<byte> datagram);

    /// <summary>The host reported the far port closed (an ICMP port unreachable for a datagram sent). Caller holds the gateway lock.</summary>
    protected virtual void OnPortUnreachable()
    {
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxDatagram);
        var cancellationToken = gateway.LoopToken;
        try
        {
            while (!IsClosed)
            {
                int received;
                try
                {
                    received = await socket.ReceiveAsync(buffer.AsMemory(0, MaxDatagram), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException ex) when (NetWire.Core.Net.IoErrors.IsUnreachable(ex.SocketErrorCode))
                {
                    // An ICMP error about an earlier datagram: keep the flow, as a NAT would, and
                    // pass a closed port on to the guest.
                    if (NetWire.Core.Net.IoErrors.IsPortUnreachable(ex.SocketErrorCode))
                    {
                        lock (gateway.Sync)
                        {
                            if (!IsClosed)
                            {
                                OnPortUnreachable();
                            }
                        }
                    }

                    continue;
                }

                if (!gateway.CanEmit)
                {
                    await gateway.WaitCanEmitAsync(cancellationToken).ConfigureAwait(false);
                }

                lock (gateway.Sync)
                {
                    if (IsClosed || gateway.Frozen)
                    {
                        // A datagram read as a migration froze the gateway is lost, as on a busy link.
                        return;
                    }

                    LastUsedMs = gateway.NowMs;
                    Deliver(buffer.AsSpan(0, received));
                }
            }
        }
        catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsShutdown(ex))
        {
        }
        catch (SocketException)
        {
            Close();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            lock (gateway.Sync)
            {
                _receiving = false;
                gateway.LoopEnded();
            }
        }
    }
}
