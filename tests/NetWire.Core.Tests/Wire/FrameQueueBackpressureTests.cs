using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Core.Tests.Wire;

public sealed class FrameQueueBackpressureTests
{
    private static Frame NewFrame(byte tag)
    {
        var frame = FramePool.Shared.Rent(60);
        frame.Span.Fill(tag);
        return frame;
    }

    [Fact]
    public void TryWrite_WhenFull_RefusesAndCanWriteIsFalse()
    {
        var queue = new FrameQueue(2);
        Assert.True(queue.TryWrite(NewFrame(1)));
        Assert.True(queue.CanWrite);
        Assert.True(queue.TryWrite(NewFrame(2)));
        Assert.False(queue.CanWrite);
        var third = NewFrame(3);
        Assert.False(queue.TryWrite(third));
        third.Dispose();
        Assert.Equal(2, queue.Count);
        Assert.Equal(2, queue.CompleteAndDrain());
    }

    [Fact]
    public async Task WaitWritableAsync_WhenFull_CompletesOnlyAfterARead()
    {
        var queue = new FrameQueue(1);
        Assert.True(queue.TryWrite(NewFrame(1)));
        var wait = queue.WaitWritableAsync(CancellationToken.None).AsTask();
        await Task.Yield();
        Assert.False(wait.IsCompleted);

        Assert.True(queue.TryRead(out var frame));
        frame.Dispose();
        await wait.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(queue.CanWrite);
    }

    [Fact]
    public async Task WaitWritableAsync_RepeatedWaits_AllocateNothing_AndCancellationStillWorks()
    {
        var queue = new FrameQueue(1);
        var frame = NewFrame(1);
        Assert.True(queue.TryWrite(frame));

        long allocated = 0;
        for (var i = 0; i < 200; i++)
        {
            // What a waiting producer pays when it starts to wait: measured on this thread, around
            // the call alone (the completion runs on the thread pool).
            var before = GC.GetAllocatedBytesForCurrentThread();
            var wait = queue.WaitWritableAsync(CancellationToken.None);
            var cost = GC.GetAllocatedBytesForCurrentThread() - before;
            if (i >= 100)
            {
                allocated += cost;
            }

            Assert.False(wait.IsCompleted);
            Assert.True(queue.TryRead(out var taken));
            await wait;
            Assert.True(queue.TryWrite(taken));
        }

        Assert.Equal(0, allocated);

        using var cts = new CancellationTokenSource();
        var cancelled = queue.WaitWritableAsync(cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await cancelled);

        var concurrentA = queue.WaitWritableAsync(CancellationToken.None).AsTask();
        var concurrentB = queue.WaitWritableAsync(CancellationToken.None).AsTask();
        Assert.True(queue.TryRead(out var last));
        await Task.WhenAll(concurrentA, concurrentB).WaitAsync(TimeSpan.FromSeconds(5));
        last.Dispose();
    }

    [Fact]
    public void ReadOrder_IsWriteOrder()
    {
        var queue = new FrameQueue(8);
        for (byte i = 0; i < 8; i++)
        {
            Assert.True(queue.TryWrite(NewFrame(i)));
        }

        for (byte i = 0; i < 8; i++)
        {
            Assert.True(queue.TryRead(out var frame));
            Assert.Equal(i, frame.Span[0]);
            frame.Dispose();
        }
    }

    [Fact]
    public void CompleteAndDrain_ReturnsFramesToThePool()
    {
        var pool = new FramePool();
        var queue = new FrameQueue(4);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(queue.TryWrite(pool.Rent(100)));
        }

        Assert.Equal(3, pool.Outstanding);
        Assert.Equal(3, queue.CompleteAndDrain());
        Assert.Equal(0, pool.Outstanding);
        Assert.False(queue.CanWrite);
    }
}
