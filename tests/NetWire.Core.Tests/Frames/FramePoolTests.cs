using NetWire.Core.Frames;

namespace NetWire.Core.Tests.Frames;

public sealed class FramePoolTests
{
    [Fact]
    public void Rent_CopiesBytes_AndDisposeReturnsIt()
    {
        var pool = new FramePool();
        var frame = pool.Rent([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        Assert.Equal(14, frame.Length);
        Assert.Equal(14, frame.Span[13]);
        Assert.Equal(1, pool.Outstanding);
        frame.Dispose();
        Assert.Equal(0, pool.Outstanding);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(FramePool.MaxFrameLength + 1)]
    public void Rent_RefusesLengthsOutsideTheFrameLimit(int length)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FramePool().Rent(length));
    }

    [Fact]
    public void Rent_ReusesFrameObjects()
    {
        var pool = new FramePool();
        var first = pool.Rent(60);
        first.Dispose();
        var second = pool.Rent(1514);
        Assert.Same(first, second);
        Assert.Equal(1514, second.Length);
        second.Dispose();
    }

    [Fact]
    public void SteadyState_RentAndReturn_AllocatesNothing()
    {
        var pool = new FramePool();
        Span<byte> payload = stackalloc byte[1514];
        for (var i = 0; i < 1000; i++)
        {
            pool.Rent(payload).Dispose();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100_000; i++)
        {
            pool.Rent(payload).Dispose();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void SteadyState_WithAThousandFramesInFlight_AllocatesNothing()
    {
        // A bridge holds hundreds of frames queued and returns them in batches.
        var pool = new FramePool();
        var held = new Frame[1000];
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < held.Length; i++)
            {
                held[i] = pool.Rent(i % 2 == 0 ? 64 : 1514);
            }

            foreach (var frame in held)
            {
                frame.Dispose();
            }
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var round = 0; round < 20; round++)
        {
            for (var i = 0; i < held.Length; i++)
            {
                held[i] = pool.Rent(i % 2 == 0 ? 64 : 1514);
            }

            foreach (var frame in held)
            {
                frame.Dispose();
            }
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(0, pool.Outstanding);
    }

    [Fact]
    public void Truncate_ShrinksButNeverGrows()
    {
        using var frame = new FramePool().Rent(100);
        frame.Truncate(60);
        Assert.Equal(60, frame.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => frame.Truncate(61));
    }
}
