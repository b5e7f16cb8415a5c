using System.Buffers;
using System.Collections.Concurrent;

namespace NetWire.Core.Frames;

/// <summary>
/// Pool of <see cref="Frame"/> objects and their buffers. Renting and returning allocate
/// nothing once the pool is warm: frame objects are recycled through a bounded queue and
/// buffers come from an <see cref="ArrayPool{T}"/>.
/// </summary>
public sealed class FramePool
{
    /// <summary>The largest frame QEMU 7.2 accepts on its socket backends (NET_BUFSIZE, 4096 + 65536).</summary>
    public const int MaxFrameLength = 69_632;

    /// <summary>An Ethernet header: destination, source, type.</summary>
    public const int MinFrameLength = 14;

    /// <summary>Frame objects kept for reuse; more than this are left to the GC.</summary>
    private const int MaxPooledFrames = 8192;

    private readonly ConcurrentQueue<Frame> _frames = new();
    private readonly ArrayPool<byte> _buffers;

    /// <summary>Frames currently leased; written with Interlocked by Rent and Return.</summary>
    private long _outstanding;

    /// <summary>A pool over the shared array pool.</summary>
    public FramePool()
        : this(ArrayPool<byte>.Shared)
    {
    }

    /// <summary>A pool over the given array pool.</summary>
    public FramePool(ArrayPool<byte> buffers)
    {
        _buffers = buffers;
    }

    /// <summary>The process-wide pool.</summary>
    public static FramePool Shared { get; } = new();

    /// <summary>Frames rented and not yet returned: the memory NetWire holds in frames.</summary>
    public long Outstanding => Interlocked.Read(ref _outstanding);

    /// <summary>Rents a frame of exactly <paramref name="length"/> bytes (contents undefined).</summary>
    public Frame Rent(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxFrameLength);
        if (!_frames.TryDequeue(out var frame))
        {
            frame = new Frame(this);
        }

        frame.Lease(_buffers.Rent(Math.Max(length, 64)), length);
        Interlocked.Increment(ref _outstanding);
        return frame;
    }

    /// <summary>Rents a frame holding a copy of <paramref name="bytes"/>.</summary>
    public Frame Rent(ReadOnlySpan<byte> bytes)
    {
        var frame = Rent(bytes.Length);
        bytes.CopyTo(frame.Span);
        return frame;
    }

    internal void Return(Frame frame)
    {
        _buffers.Return(frame.Release());
        Interlocked.Decrement(ref _outstanding);
        if (_frames.Count < MaxPooledFrames)
        {
            _frames.Enqueue(frame);
        }
    }
}
