using System.Buffers.Binary;
using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Core.Tests.Wire;

/// <summary>
/// The replay's single-producer ring: frames are seen only once published, in order and byte for
/// byte; a full ring refuses until the consumer releases (backpressure, no drop); a frame longer
/// than a slot travels in a pooled frame that the release returns; completion ends the consumer.
/// </summary>
public sealed class FrameRingTests
{
    [Fact]
    public void TryWrite_WhenFull_RefusesUntilTheConsumerReleases()
    {
        using var ring = new FrameRing(4, new FramePool());
        for (var i = 0; i < 4; i++)
        {
            Assert.True(ring.TryWrite(Numbered(i, 60)));
        }

        Assert.False(ring.TryWrite(Numbered(4, 60)));
        Assert.Equal(0, ring.Count);
        ring.Publish();
        Assert.Equal(4, ring.Count);

        Assert.Equal(3, ring.WaitReadable(3, TestContext.Current.CancellationToken));
        Assert.Equal(0, NumberOf(ring.Span(0)));
        ring.Release(2);
        Assert.True(ring.TryWrite(Numbered(4, 60)));
        Assert.True(ring.TryWrite(Numbered(5, 60)));
        Assert.False(ring.TryWrite(Numbered(6, 60)));
        ring.Publish();

        Assert.Equal(4, ring.WaitReadable(int.MaxValue, TestContext.Current.CancellationToken));
        Assert.Equal([2, 3, 4, 5], Enumerable.Range(0, 4).Select(i => NumberOf(ring.Span(i))));
    }

    [Fact]
    public void Capacity_IsRoundedUpToAPowerOfTwo()
    {
        using var ring = new FrameRing(5, new FramePool());
        Assert.Equal(8, ring.Capacity);
    }

    [Fact]
    public unsafe void FrameLongerThanASlot_TravelsInAPooledFrame_ThatReleaseReturns()
    {
        var pool = new FramePool();
        using var ring = new FrameRing(4, pool);
        Assert.True(ring.TryWrite(Numbered(1, FrameRing.SlotBytes)));
        Assert.True(ring.TryWrite(Numbered(2, FrameRing.SlotBytes + 1)));
        Assert.Equal(1, pool.Outstanding);
        ring.Publish();

        Assert.Equal(2, ring.WaitReadable(int.MaxValue, TestContext.Current.CancellationToken));
        Assert.True(ring.SlotAddress(0) is not null);
        Assert.True(ring.SlotAddress(1) is null);
        Assert.Equal(Numbered(1, FrameRing.SlotBytes), ring.Span(0).ToArray());
        Assert.Equal(Numbered(2, FrameRing.SlotBytes + 1), ring.Span(1).ToArray());
        Assert.Equal(FrameRing.SlotBytes + 1, ring.Length(1));
        ring.Release(2);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Discard_ReleasesWhatWasPublished_AndCountsIt()
    {
        var pool = new FramePool();
        using var ring = new FrameRing(4, pool);
        Assert.True(ring.TryWrite(Numbered(1, 60)));
        Assert.True(ring.TryWrite(Numbered(2, 5000)));
        ring.Publish();
        Assert.Equal(2, ring.Discard());
        Assert.Equal(0, ring.Count);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void WaitWritable_OnAFullRing_ThrowsWhenCancelled()
    {
        using var ring = new FrameRing(1, new FramePool());
        Assert.True(ring.TryWrite(Numbered(1, 60)));
        ring.Publish();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => ring.WaitWritable(cancelled.Token));
    }

    [Fact]
    public async Task Complete_WakesASleepingConsumer_WhichThenSeesNoMoreFrames()
    {
        using var ring = new FrameRing(4, new FramePool());
        var consumer = Task.Factory.StartNew(() => ring.WaitReadable(int.MaxValue, TestContext.Current.CancellationToken), TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ring.Complete();
        Assert.Equal(0, await consumer);
        Assert.True(ring.IsCompleted);
    }

    [Fact]
    public async Task ProducerAndConsumerOnTheirOwnThreads_EveryFrameArrivesInOrder_NoneDropped()
    {
        const int Frames = 200_000;
        var pool = new FramePool();
        using var ring = new FrameRing(64, pool);
        var token = TestContext.Current.CancellationToken;
        var producer = Task.Factory.StartNew(
            () =>
            {
                for (var i = 0; i < Frames; i++)
                {
                    var frame = Numbered(i, LengthOf(i));
                    while (!ring.TryWrite(frame))
                    {
                        ring.Publish();
                        ring.WaitWritable(token);
                    }

                    if (i % 7 == 0)
                    {
                        ring.Publish();
                    }
                }

                ring.Complete();
            },
            token,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
        var consumer = Task.Factory.StartNew(
            () =>
            {
                var next = 0;
                int count;
                while ((count = ring.WaitReadable(64, token)) > 0)
                {
                    for (var i = 0; i < count; i++, next++)
                    {
                        var span = ring.Span(i);
                        if (span.Length != LengthOf(next) || NumberOf(span) != next || span[^1] != (byte)next)
                        {
                            return next;
                        }
                    }

                    ring.Release(count);
                }

                return next;
            },
            token,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        await producer;
        Assert.Equal(Frames, await consumer);
        Assert.Equal(0, ring.Count);
        Assert.Equal(0, pool.Outstanding);
    }

    /// <summary>Mostly small frames; every 1000th one longer than a slot.</summary>
    private static int LengthOf(int n) => n % 1000 == 999 ? 9000 : 60 + (n % 1400);

    private static byte[] Numbered(int n, int length)
    {
        var frame = new byte[length];
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(14), n);
        frame[^1] = (byte)n;
        return frame;
    }

    private static int NumberOf(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadInt32BigEndian(frame[14..]);
}
