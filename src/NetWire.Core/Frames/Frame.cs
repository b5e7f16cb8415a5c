using System.Diagnostics;

namespace NetWire.Core.Frames;

/// <summary>
/// One Ethernet frame (destination MAC first, no FCS, no virtio-net header) in a pooled buffer,
/// with what is still to be done to it (<see cref="Offload"/>) beside it.
/// </summary>
/// <remarks>
/// Ownership is explicit: whoever holds a <see cref="Frame"/> owns its buffer until it hands the
/// frame on (<see cref="Wire.INetWire.SendPacket"/>, <see cref="Wire.IPacketReceiver.RecvPacket"/>
/// both take ownership) or calls <see cref="Dispose"/>, which returns the buffer and the frame
/// object to their pools. Borrowers get <see cref="Span"/>; nobody keeps a reference after
/// handing a frame on.
/// </remarks>
public sealed class Frame : IDisposable
{
    private readonly FramePool _pool;
    private byte[] _buffer = [];
    private int _length;

    /// <summary>1 while leased from the pool, 0 while pooled; guards against double returns.</summary>
    private int _leased;

    internal Frame(FramePool pool)
    {
        _pool = pool;
    }

    /// <summary>Frame length in bytes.</summary>
    public int Length => _length;

    /// <summary>The frame's bytes, writable by the owner.</summary>
    public Span<byte> Span => _buffer.AsSpan(0, _length);

    /// <summary>The frame's bytes as memory, for socket APIs.</summary>
    public Memory<byte> Memory => _buffer.AsMemory(0, _length);

    /// <summary>When the frame entered NetWire, in <see cref="TimeProvider.GetUtcNow"/> ticks (UTC); 0 if unset.</summary>
    public long TimestampUtcTicks { get; set; }

    /// <summary>
    /// Checksum and segmentation work left to the device, or checks it already made; plain for a
    /// frame that was rented, and only set by a producer whose receiver takes the offload
    /// (<see cref="Wire.IPacketReceiver.AcceptedOffloads"/>).
    /// </summary>
    public FrameOffload Offload { get; set; }

    internal byte[] Buffer => _buffer;

    internal void Lease(byte[] buffer, int length)
    {
        Debug.Assert(_leased == 0, "frame leased twice");
        _leased = 1;
        _buffer = buffer;
        _length = length;
        TimestampUtcTicks = 0;
        Offload = default;
    }

    internal byte[] Release()
    {
        var buffer = _buffer;
        _buffer = [];
        _length = 0;
        return buffer;
    }

    /// <summary>Shrinks the frame to <paramref name="length"/> bytes (after a read filled less than rented).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _length);
        _length = length;
    }

    /// <summary>Returns the buffer and this object to the pool. The frame must not be used afterwards.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _leased, 0) == 0)
        {
            Debug.Fail("frame returned twice");
            return;
        }

        _pool.Return(this);
    }
}
