using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;

namespace NetWire.Stack.Tests;

/// <summary>
/// A gateway on fake time attached for one test class, its frames towards the guest going to a
/// receiver; stopped and shut down when the class is disposed.
/// </summary>
internal sealed class GatewayRun : IDisposable
{
    private readonly CancellationTokenSource _stop = new();

    public GatewayRun(GatewayOptions options, IPacketReceiver receiver, FramePool? pool = null)
    {
        Gateway = GatewayTesting.Create(options, new FakeTimeProvider(), receiver, pool, _stop.Token);
    }

    public Gateway Gateway { get; }

    public void Dispose()
    {
        _stop.Cancel();
        lock (Gateway.Sync)
        {
            Gateway.Shutdown();
        }

        _stop.Dispose();
    }
}

/// <summary>What the socket-free gateway tests share: a gateway attached to a collecting receiver, a frame in, the one frame out.</summary>
internal static class GatewayTesting
{
    /// <summary>A gateway whose frames towards the guest go to <paramref name="receiver"/>.</summary>
    public static Gateway Create(GatewayOptions options, TimeProvider time, IPacketReceiver receiver, FramePool? pool = null, CancellationToken stopping = default)
    {
        var gateway = new Gateway(options, pool ?? new FramePool(), time, NullLogger.Instance);
        gateway.Attach(receiver, new WireCounters(), stopping);
        return gateway;
    }

    /// <summary>One frame from the guest, as the pump hands it over: under the lock, then the end of the batch.</summary>
    public static void Send(this Gateway gateway, byte[] frame)
    {
        lock (gateway.Sync)
        {
            gateway.OnGuestFrame(frame);
            gateway.EndOfBatch();
        }
    }

    /// <summary>Frames from the guest as one batch of the pump: all under the lock, then the end of the batch.</summary>
    public static void SendBatch(this Gateway gateway, params byte[][] frames)
    {
        lock (gateway.Sync)
        {
            foreach (var frame in frames)
            {
                gateway.OnGuestFrame(frame);
            }

            gateway.EndOfBatch();
        }
    }

    /// <summary>The next TCP segment with exactly <paramref name="flags"/> the gateway sent (others are skipped), waiting up to 30 s.</summary>
    public static async Task<TcpHeader> NextTcpAsync(this CollectingReceiver receiver, TcpFlags flags)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            while (receiver.Frames.TryDequeue(out var frame))
            {
                var (tcp, _) = TestPackets.ParseTcp(frame);
                if (tcp.Flags == flags)
                {
                    return tcp;
                }
            }

            await Task.Delay(5, limit.Token);
        }
    }

    /// <summary>The one frame the gateway sent; fails when there is none or more than one.</summary>
    public static byte[] Single(this CollectingReceiver receiver)
    {
        Assert.True(receiver.Frames.TryDequeue(out var frame), "expected a frame from the gateway");
        Assert.Empty(receiver.Frames);
        return frame;
    }
}
