using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Core.Tests.Wire;

/// <summary>
/// A producer on a dedicated thread sleeps on a full queue and is woken by the consumer itself,
/// once half the queue is free (not at every freed slot), or when the queue completes.
/// </summary>
public sealed class FrameQueueRoomSignalTests
{
    private static Frame NewFrame() => FramePool.Shared.Rent(60);

    [Fact]
    public void TryArmRoomSignal_WithRoom_RefusesAndLeavesNothingArmed()
    {
        var queue = new FrameQueue(4);
        var signal = new ThreadSignal();
        Assert.True(queue.TryWrite(NewFrame()));
        Assert.False(queue.TryArmRoomSignal(signal));
        Fill(queue);
        Assert.Equal(1, Take(queue, 1));
        Assert.False(signal.Wait(0));
        Assert.Equal(3, queue.CompleteAndDrain());
    }

    [Fact]
    public void ArmedSignal_IsSetOnceHalfTheQueueIsFree_NotAtTheFirstFreedSlot()
    {
        var queue = new FrameQueue(8);
        var signal = new ThreadSignal();
        Fill(queue);
        Assert.True(queue.TryArmRoomSignal(signal));

        Assert.Equal(3, Take(queue, 3));
        Assert.False(signal.Wait(0));
        Assert.Equal(1, Take(queue, 1));
        Assert.True(signal.Wait(0));

        // Set once: the takes after it owe nothing.
        Assert.Equal(4, Take(queue, 4));
        Assert.False(signal.Wait(0));
        queue.CompleteAndDrain();
    }

    [Fact]
    public void SecondProducer_CannotArm_WhileTheFirstIsArmed_ButTheFirstMayArmAgain()
    {
        var queue = new FrameQueue(2);
        var first = new ThreadSignal();
        var second = new ThreadSignal();
        Fill(queue);
        Assert.True(queue.TryArmRoomSignal(first));
        Assert.False(queue.TryArmRoomSignal(second));

        // Woken by its own timeout, the first producer arms the same signal again.
        Assert.True(queue.TryArmRoomSignal(first));
        Assert.Equal(1, Take(queue, 1));
        Assert.True(first.Wait(0));
        Assert.False(second.Wait(0));
        queue.CompleteAndDrain();
    }

    [Fact]
    public void ArmedSignal_IsSetWhenTheQueueCompletes()
    {
        var queue = new FrameQueue(2);
        var signal = new ThreadSignal();
        Fill(queue);
        Assert.True(queue.TryArmRoomSignal(signal));
        Assert.Equal(2, queue.CompleteAndDrain());
        Assert.True(signal.Wait(0));
        Assert.False(queue.TryArmRoomSignal(signal));
    }

    [Fact]
    public void ProducerOnASignal_DeliversEveryFrameInOrder_WithAConsumerOnAnotherThread()
    {
        const int Frames = 20_000;
        var queue = new FrameQueue(64);
        var room = new ThreadSignal();
        var timeouts = 0;
        var producer = new Thread(() =>
        {
            for (var i = 0; i < Frames; i++)
            {
                while (!queue.CanWrite)
                {
                    // Only a missed wake-up leaves the producer asleep for the whole 10 s.
                    if (queue.TryArmRoomSignal(room) && !room.Wait(10_000))
                    {
                        timeouts++;
                    }
                }

                var frame = NewFrame();
                frame.Span[0] = (byte)i;
                Assert.True(queue.TryWrite(frame));
            }
        });
        producer.Start();
        var received = 0;
        var outOfOrder = 0;
        var spin = default(SpinWait);
        while (received < Frames)
        {
            if (queue.TryRead(out var frame))
            {
                if (frame.Span[0] != (byte)received)
                {
                    outOfOrder++;
                }

                frame.Dispose();
                received++;
            }
            else
            {
                spin.SpinOnce();
            }
        }

        Assert.True(producer.Join(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, outOfOrder);
        Assert.Equal(0, timeouts);
    }

    private static void Fill(FrameQueue queue)
    {
        while (queue.CanWrite)
        {
            Assert.True(queue.TryWrite(NewFrame()));
        }
    }

    private static int Take(FrameQueue queue, int most)
    {
        var count = 0;
        while (count < most && queue.TryRead(out var frame))
        {
            frame.Dispose();
            count++;
        }

        return count;
    }
}
