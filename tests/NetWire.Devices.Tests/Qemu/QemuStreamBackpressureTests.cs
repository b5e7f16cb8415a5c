using NetWire.Core.Wire;

namespace NetWire.Devices.Tests.Qemu;

public sealed class QemuStreamBackpressureTests
{
    [Fact]
    public async Task GuestThatStopsReading_PausesTheHost_BoundsMemory_ThenGetsEveryFrame()
    {
        const int Queue = 32;
        const int Total = 20_000;
        await using var bridge = await LoopbackBridge.StreamAsync(queue: Queue);
        using var client = await StreamClient.ConnectAsync(bridge.SocketPath);
        await client.SendFrameAsync(StreamClient.Frame(60, -1));
        Assert.Single(await bridge.HostReceivesAsync(1));

        // 20,000 x 1,514 bytes is 30 MB: far more than the socket buffers and the queue hold.
        var flood = Task.Run(async () =>
        {
            for (var i = 0; i < Total; i++)
            {
                await bridge.Host.Inject(StreamClient.Frame(1514, i));
            }
        });

        Assert.True(await LoopbackBridge.EventuallyAsync(() => !bridge.Guest.CanSendPacket));
        await Task.Delay(300);
        Assert.False(flood.IsCompleted);
        Assert.Equal(Queue, bridge.Guest.QueuedFrames);
        var held = bridge.Pool.Outstanding;
        Assert.InRange(held, 0, Queue + 8);

        // The guest reads again: every frame arrives, in order, none dropped.
        for (var i = 0; i < Total; i++)
        {
            var frame = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
            Assert.NotNull(frame);
            Assert.Equal(i, StreamClient.SeqOf(frame));
        }

        await flood.WaitAsync(TimeSpan.FromSeconds(30));

        // The end counts a write once the call returns, which can be after the reader has the bytes.
        Assert.True(await LoopbackBridge.EventuallyAsync(() => bridge.Guest.Counters.TxFrames == Total), $"tx frames {bridge.Guest.Counters.TxFrames}");
        Assert.Equal(0, bridge.Guest.Counters.TotalDrops);
    }

    [Fact]
    public async Task FullHost_StopsReadingTheGuestSocket_ThenDeliversEverything()
    {
        const int HostQueue = 16;
        const int Total = 5_000;
        await using var bridge = await LoopbackBridge.StreamAsync(hostQueue: HostQueue);
        using var client = await StreamClient.ConnectAsync(bridge.SocketPath);
        client.Socket.SendBufferSize = 64 * 1024;

        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < Total; i++)
            {
                await client.SendFrameAsync(StreamClient.Frame(1514, i));
            }
        });

        Assert.True(await LoopbackBridge.EventuallyAsync(() => bridge.Host.Queued == HostQueue));
        await Task.Delay(300);

        // NetWire took only what the host end could queue; the rest waits in the guest's socket.
        Assert.Equal(HostQueue, bridge.Guest.Counters.RxFrames);
        Assert.False(sending.IsCompleted);

        var received = await bridge.HostReceivesAsync(Total, TimeSpan.FromSeconds(60));
        await sending.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Enumerable.Range(0, Total), received.Select(StreamClient.SeqOf));
        Assert.Equal(0, bridge.Guest.Counters.TotalDrops + bridge.Host.Counters.TotalDrops);
    }

    [Fact]
    public async Task StopWhileTheGuestStalls_CountsEveryAcceptedFrameAsSentOrDropped()
    {
        // The send thread holds a buffer of frames taken from the queue while it waits for the
        // stalled guest's socket; a stop must count those too before the end reports stopped.
        var bridge = await LoopbackBridge.StreamAsync(queue: 32);
        var disposed = false;
        try
        {
            using var client = await StreamClient.ConnectAsync(bridge.SocketPath);
            client.Socket.ReceiveBufferSize = 16 * 1024;
            await client.SendFrameAsync(StreamClient.Frame(60, -1));
            Assert.Single(await bridge.HostReceivesAsync(1));

            using var flooding = new CancellationTokenSource();
            var flood = Task.Run(async () =>
            {
                for (var i = 0; !flooding.IsCancellationRequested; i++)
                {
                    await bridge.Host.Inject(StreamClient.Frame(1514, i), flooding.Token);
                }
            });
            Assert.True(await LoopbackBridge.EventuallyAsync(() => !bridge.Guest.CanSendPacket));

            // Long enough for the send thread to fill the socket and wait in poll with frames in hand.
            await Task.Delay(300);
            await flooding.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => flood);
            var accepted = bridge.Host.Counters.RxFrames;
            Assert.True(accepted > 32, $"accepted {accepted}");

            disposed = true;
            await bridge.DisposeAsync();
            var guest = bridge.Guest.Counters;
            Assert.Equal(accepted, guest.TxFrames + guest.TotalDrops);
            Assert.True(guest.TotalDrops > 0, $"the stalled guest cannot have taken all {accepted} frames: tx {guest.TxFrames}");
        }
        finally
        {
            if (!disposed)
            {
                await bridge.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task GuestThatGoesAway_WithFramesStillInItsSocket_TheyAllReachTheHost()
    {
        // A guest (netwire replay, say) writes its frames and closes before the answers come: a
        // send towards it then fails, and the frames it wrote are still in NetWire's socket.
        const int Total = 10;
        await using var bridge = await LoopbackBridge.StreamAsync(hostQueue: 1, drainLimit: TimeSpan.FromSeconds(60));
        using (var client = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            for (var i = 0; i < Total; i++)
            {
                await client.SendFrameAsync(StreamClient.Frame(60, i));
            }

            // The host end holds one frame and takes no more: the receive side waits for room.
            Assert.True(await LoopbackBridge.EventuallyAsync(() => bridge.Host.Queued == 1));
        }

        await bridge.Host.Inject(StreamClient.Frame(60, 100));
        Assert.True(
            await LoopbackBridge.EventuallyAsync(() => bridge.Guest.Counters.Drops(DropReason.SendFailed) == 1, TimeSpan.FromSeconds(60)),
            $"send_failed {bridge.Guest.Counters.Drops(DropReason.SendFailed)}");

        var received = await bridge.HostReceivesAsync(Total, TimeSpan.FromSeconds(60));
        Assert.Equal(Enumerable.Range(0, Total), received.Select(StreamClient.SeqOf));
        Assert.Equal(Total, bridge.Guest.Counters.RxFrames);
    }
}
