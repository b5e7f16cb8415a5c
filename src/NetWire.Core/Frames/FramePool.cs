using System.Numerics;

namespace NetWire.Core.Frames;

/// <summary>
/// Pool of <see cref="Frame"/> objects and their buffers. Renting and returning allocate
/// nothing once the pool is warm, even with thousands of frames in flight.
/// </summary>
/// <remarks>
/// How this works: buffers are kept by power-of-two size class (64 B to 128 KiB), each class a
/// bounded stack under its own lock, sized for what a busy appliance holds in flight (queues of
/// 256 frames per end, batches of 64): the shared ArrayPool keeps only a few dozen arrays per
/// size, and a bridge returning a batch of frames at once overflowed it and allocated anew
/// (measured 44-260 B per frame through the bridge). Frame objects are recycled the same way.
/// What a class cannot hold is left to the GC, so retained memory is bounded per class.
/// </remarks>
public sealed class FramePool
{
    /// <summary>The largest frame QEMU 7.2 accepts on its socket backends (NET_BUFSIZE, 4096 + 65536; protocol.md §8.3).</summary>
    public const int MaxFrameLength = 69_632;

    /// <summary>An Ethernet header: destination, source, type.</summary>
    public const int MinFrameLength = 14;

    private const int MinBufferShift = 6;
    private const int MaxBufferShift = 17;
    private const int MaxPooledFrames = 8192;

    /// <summary>Retained bytes per size class at most; small classes are capped by count instead.</summary>
    private const int MaxBytesPerClass = 32 << 20;
    private const int MaxBuffersPerClass = 4096;

    private readonly BoundedStack<Frame> _frames = new(MaxPooledFrames);
    private readonly BoundedStack<byte[]>[] _classes;

    /// <summary>Frames currently leased; written with Interlocked by Rent and Return.</summary>
    private long _outstanding;

    /// <summary>Creates an empty pool.</summary>
    public FramePool()
    {
        _classes = new BoundedStack<byte[]>[MaxBufferShift - MinBufferShift + 1];
        for (var i = 0; i < _classes.Length; i++)
        {
            var size = 1 << (i + MinBufferShift);
            _classes[i] = new BoundedStack<byte[]>(Math.Min(MaxBuffersPerClass, Math.Max(64, MaxBytesPerClass / size)));
        }
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
        var frame = _frames.TryPop() ?? new Frame(this);
        var index = ClassOf(length);
        var buffer = _classes[index].TryPop() ?? GC.AllocateUninitializedArray<byte>(1 << (index + MinBufferShift));
        frame.Lease(buffer, length);
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
        var buffer = frame.Release();
        _classes[ClassOf(buffer.Length)].TryPush(buffer);
        Interlocked.Decrement(ref _outstanding);
        _frames.TryPush(frame);
    }

    private static int ClassOf(int length) =>
        length <= 1 << MinBufferShift ? 0 : BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)length)) - MinBufferShift;

    /// <summary>A fixed-capacity stack under a lock: no allocation after construction.</summary>
    private sealed class BoundedStack<T>(int capacity)
        where T : class
    {
        private readonly Lock _lock = new();
        private readonly T?[] _items = new T?[capacity];
        private int _count;

        public T? TryPop()
        {
            lock (_lock)
            {
                if (_count == 0)
                {
                    return null;
                }

                var item = _items[--_count];
                _items[_count] = null;
                return item;
            }
        }

        public void TryPush(T item)
        {
            lock (_lock)
            {
                if (_count < _items.Length)
                {
                    _items[_count++] = item;
                }
            }
        }
    }
}
