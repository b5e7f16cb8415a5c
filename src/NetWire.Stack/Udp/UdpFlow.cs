using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace NetWire.Stack.Udp;

/// <summary>
/// One UDP flow: a host socket connected to the real destination. Its receive loop waits until
/// the guest end can take a frame before reading (backpressure; the kernel's socket buffer
/// absorbs or drops what the sender pushes meanwhile), then sends the datagram to the guest
/// from the address the guest used.
/// </summary>
internal sealed class UdpFlow(Gateway gateway, FlowKey key, IPEndPoint target, TimeSpan idleTimeout) : IDisposable
{
    private const int MaxDatagram = 65_507;

    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    private int _closed;

    /// <summary>Last traffic either way, in gateway milliseconds; written under the gateway lock.</summary>
    public long LastUsedMs { get; private set; } = gateway.NowMs;

    public long IdleTimeoutMs { get; } = (long)idleTimeout.TotalMilliseconds;

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    public void Start()
    {
        try
        {
            _socket.Blocking = false;
            _socket.Connect(target);
        }
        catch (SocketException)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
            Close();
            return;
        }

        _ = ReceiveLoopAsync();
    }

    /// <summary>Caller holds the gateway lock.</summary>
    public void Send(ReadOnlySpan<byte> payload, long nowMs)
    {
        LastUsedMs = nowMs;
        if (IsClosed)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
            return;
        }

        _socket.Send(payload, SocketFlags.None, out var error);
        if (error != SocketError.Success)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
        }
    }

    public void Dispose() => Close();

    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            _socket.Dispose();
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxDatagram);
        try
        {
            var cancellationToken = gateway.Stopping;
            while (!IsClosed)
            {
                int received;
                try
                {
                    received = await _socket.ReceiveAsync(buffer.AsMemory(0, MaxDatagram), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
                {
                    // ICMP port unreachable from the destination: keep the flow, as a NAT would.
                    continue;
                }

                await WaitGuestAsync(cancellationToken).ConfigureAwait(false);
                lock (gateway.Sync)
                {
                    if (IsClosed)
                    {
                        return;
                    }

                    LastUsedMs = gateway.NowMs;
                    Deliver(buffer.AsSpan(0, received));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException)
        {
            Close();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private ValueTask WaitGuestAsync(CancellationToken cancellationToken) =>
        gateway.CanEmit ? default : gateway.WaitCanEmitAsync(cancellationToken);

    private void Deliver(ReadOnlySpan<byte> payload) => UdpNat.EmitToGuest(gateway, key, payload);
}
