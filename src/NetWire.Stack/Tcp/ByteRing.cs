using System.Buffers;
using System.Diagnostics;

namespace NetWire.Stack.Tcp;

/// <summary>
/// A fixed-size byte ring holding one direction of a TCP connection: committed bytes from
/// the head, and room after the tail where out-of-order bytes may be written ahead of their
/// commit. Used under the gateway lock only.
/// </summary>
/// <remarks>
/// The buffer is rented when bytes first need a place and returned as soon as the ring is empty
/// again (<see cref="ReleaseIfEmpty"/>), so an idle connection holds none: a thousand open, quiet
/// connections cost a thousand small objects, not a thousand times two buffers of 256 KiB or
/// more (docs/performance.md, "User-mode gateway").
/// </remarks>
internal sealed class ByteRing(int capacity)
{
    /// <summary>The ring's bytes; empty while nothing is held.</summary>
    private byte[] _buffer = [];
    private int _head;
    private int _count;
    private bool _returned;

    public int Capacity { get; } = capacity;

    /// <summary>Committed bytes.</summary>
    public int Count => _count;

    /// <summary>Room after the committed bytes.</summary>
    public int Free => Capacity - _count;

    /// <summary>Bytes of buffer the ring holds now: 0 while it is empty.</summary>
    public int BufferBytes => _buffer.Length;

    /// <summary>Copies <paramref name="data"/> to <paramref name="offset"/> bytes past the tail (not committed).</summary>
    public void WriteAt(int offset, ReadOnlySpan<byte> data)
    {
        var buffer = EnsureBuffer();
        var position = (_head + _count + offset) % Capacity;
        var first = Math.Min(data.Length, Capacity - position);
        data[..first].CopyTo(buffer.AsSpan(position));
        data[first..].CopyTo(buffer.AsSpan(0));
    }

    /// <summary>Makes <paramref name="length"/> bytes after the tail part of the content.</summary>
    public void Commit(int length) => _count += length;

    /// <summary>Copies committed bytes from <paramref name="offset"/> into <paramref name="destination"/>.</summary>
    public void CopyTo(int offset, Span<byte> destination)
    {
        var position = (_head + offset) % Capacity;
        var first = Math.Min(destination.Length, Capacity - position);
        _buffer.AsSpan(position, first).CopyTo(destination);
        _buffer.AsSpan(0, destination.Length - first).CopyTo(destination[first..]);
    }

    /// <summary>Drops <paramref name="length"/> bytes from the head.</summary>
    public void Consume(int length)
    {
        _head = (_head + length) % Capacity;
        _count -= length;
    }

    /// <summary>The contiguous committed bytes at the head.</summary>
    public ReadOnlySpan<byte> Readable() => _count == 0 ? default : _buffer.AsSpan(_head, Math.Min(_count, Capacity - _head));

    /// <summary>The contiguous free bytes at the tail (renting the buffer if the ring has none).</summary>
    public Span<byte> Writable()
    {
        var buffer = EnsureBuffer();
        var tail = (_head + _count) % Capacity;
        return buffer.AsSpan(tail, Math.Min(Free, Capacity - tail));
    }

    /// <summary>Adds <paramref name="data"/> after the committed bytes (a migrated buffer); the caller checked it fits.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        WriteAt(0, data);
        Commit(data.Length);
    }

    /// <summary>A copy of the committed bytes (a migration's snapshot).</summary>
    public byte[] ToArray()
    {
        if (_count == 0)
        {
            return [];
        }

        var copy = new byte[_count];
        CopyTo(0, copy);
        return copy;
    }

    /// <summary>Returns the buffer to the pool; the ring must not be used afterwards.</summary>
    /// <summary>
    /// Returns the buffer to the pool while the ring holds nothing. Only when no bytes were
    /// written ahead of the tail (<see cref="WriteAt"/> with an offset) that still wait for their
    /// commit: the caller knows.
    /// </summary>
    public void ReleaseIfEmpty()
    {
        if (_count == 0 && _buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            _head = 0;
        }
    }

    /// <summary>Returns the buffer to the pool for good; the ring must not be used afterwards.</summary>
    public void Return()
    {
        _returned = true;
        _count = 0;
        ReleaseIfEmpty();
    }

    private byte[] EnsureBuffer()
    {
        Debug.Assert(!_returned, "a ring used after its connection closed");
        if (_buffer.Length == 0)
        {
            _buffer = ArrayPool<byte>.Shared.Rent(Capacity);
        }

        return _buffer;
    }
}
