using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Core.Tests.Wire;

/// <summary>
/// A consumer on a dedicated thread parks on its queue and is woken by the writer itself: once
/// per park, never while frames are queued, and also when the queue completes.
/// </summary>
public sealed class FrameQueueReaderSignalTests
{
    private static Frame NewFrame() => FramePool.Shared.Rent(60);

    [Fact]
    public void TryParkReader_WithFramesQueued_RefusesAndNobodyIsSignalled()
    {
        var queue = new FrameQueue(4);
        var signals = 0;
        queue.SetReaderSignal(() => signals++);
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.False(queue.TryParkReader());
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.Equal(0, signals);
        Assert.Equal(2, queue.CompleteAndDrain());
    }

    [Fact]
    public void ParkedReader_IsSignalledOnceByTheNextWrite_AndNotByTheOnesAfter()
    {
        var queue = new FrameQueue(4);
        var signals = 0;
        queue.SetReaderSignal(() => signals++);
        Assert.True(queue.TryParkReader());
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.Equal(1, signals);

        // Woken by its own timeout instead: no signal is owed.
        Assert.Equal(2, Drain(queue));
        Assert.True(queue.TryParkReader());
        queue.UnparkReader();
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.Equal(1, signals);
        Assert.Equal(1, queue.CompleteAndDrain());
    }

    [Fact]
    public void ParkedReader_IsSignalledWhenTheQueueCompletes()
    {
        var queue = new FrameQueue(4);
        var signals = 0;
        queue.SetReaderSignal(() => signals++);
        Assert.True(queue.TryParkReader());
        queue.CompleteAndDrain();
        Assert.Equal(1, signals);
        Assert.True(queue.IsCompleted);
        Assert.False(queue.TryParkReader());
    }

    [Fact]
    public void ThreadOnASignal_SeesEveryFrame_WithAWriterOnAnotherThread()
    {
        const int Frames = 20_000;
        var queue = new FrameQueue(64);
        var wake = new ThreadSignal();
        queue.SetReaderSignal(wake.Set);
        var received = 0;
        var timeouts = 0;
        var reader = new Thread(() =>
        {
            while (received < Frames)
            {
                while (queue.TryRead(out var frame))
                {
                    frame.Dispose();
                    received++;
                }

                if (received < Frames && queue.TryParkReader())
                {
                    // Only a missed wake-up leaves the reader asleep for the whole 10 s.
                    if (!wake.Wait(10_000))
                    {
                        timeouts++;
                    }

                    queue.UnparkReader();
                }
            }
        });
        reader.Start();
        var sent = 0;
        var spin = default(SpinWait);
        while (sent < Frames)
        {
            var frame = NewFrame();
            if (queue.TryWrite(frame))
            {
                sent++;
            }
            else
            {
                frame.Dispose();
                spin.SpinOnce();
            }
        }

        Assert.True(reader.Join(TimeSpan.FromSeconds(60)), $"the reader saw {received} of {Frames} frames");
        Assert.Equal(0, timeouts);
    }

    private static int Drain(FrameQueue queue)
    {
        var count = 0;
        while (queue.TryRead(out var frame))
        {
            frame.Dispose();
            count++;
        }

        return count;
    }
}
