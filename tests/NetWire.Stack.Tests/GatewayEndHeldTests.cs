using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// A held gateway (a migration target, frozen until its state is adopted) leaves the guest's
/// frames queued whichever thread would handle them: the poller's, or the thread that queues a
/// frame while the poller sleeps, as the test's thread does here (docs/migration.md, "Gateway
/// flows"). No host socket is opened for them until the release, which handles them.
/// </summary>
public sealed class GatewayEndHeldTests
{
    private const uint GuestIsn = 5000;

    [Fact]
    public async Task GuestSynQueuedWhileHeld_OpensNothing_UntilReleased()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        var receiver = new CollectingReceiver();
        await using var end = new GatewayEnd("gateway", new GatewayOptions { AllowHostLoopback = true }, FramePool.Shared, 64, TimeProvider.System, NullLogger.Instance);
        end.Hold();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var run = end.RunAsync(receiver, stop.Token);

        // Long enough for the poller to find nothing to do and sleep: the SYN then reaches the gateway end on this thread.
        await Task.Delay(200, cancellationToken);
        end.SendPacket(FramePool.Shared.Rent(BuildTcp(GuestIp, 41000, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 })));
        await Task.Delay(300, cancellationToken);
        Assert.Equal(1, end.QueuedFrames);
        Assert.False(listener.Pending(), "a held gateway connected to the host");
        Assert.Empty(receiver.Frames);
        Assert.Equal(0, end.TcpConnections);

        end.ReleaseHold();
        using var accepted = await listener.AcceptSocketAsync(cancellationToken).AsTask().WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
        var synAck = await receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(GuestIsn + 1, synAck.AckNumber);
        Assert.Equal(0, end.QueuedFrames);

        await stop.CancelAsync();
        await run;
    }
}
