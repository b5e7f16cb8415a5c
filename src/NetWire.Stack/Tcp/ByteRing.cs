using System.Buffers;

namespace NetWire.Stack.Tcp;

/// <summary>
/// A fixed-size byte ring holding one direction of a TCP connection: committed bytes from
/// the head, and room after the tail where out-of-order bytes may be written ahead of their
/// commit. Head and count change only under the gateway lock; a socket loop may fill the
/// writable segment (or drain the readable one) outside it, because the other side never
/// touches that region until the loop commits (or consumes) under the lock.
/// </summary>
internal sealed class ByteRing
{
    private byte[] _buffer;
    private int _head;
    private int _count;

    public ByteRing(int capacity)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(capacity);
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>Committed bytes.</summary>
    public int Count => _count;

    /// <summary>Room after the committed bytes.</summary>
    public int Free => Capacity - _count;

    /// <summary>Copies <paramref name="data"/> to <paramref name="offset"/> bytes past the tail (not committed).</summary>
    public void WriteAt(int offset, ReadOnlySpan<byte> data)
    {
        var position = (_head + _count + offset) % Capacity;
        var first = Math.Min(data.Length, Capacity - position);
        data[..first].CopyTo(_buffer.AsSpan(position));
        data[first..].CopyTo(_buffer.AsSpan(0));
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
    public Memory<byte> Readable() => _buffer.AsMemory(_head, Math.Min(_count, Capacity - _head));

    /// <summary>The contiguous free bytes at the tail.</summary>
    public Memory<byte> Writable()
    {
        var tail = (_head + _count) % Capacity;
        return _buffer.AsMemory(tail, Math.Min(Free, Capacity - tail));
    }

    /// <summary>Adds <paramref name="data"/> after the committed bytes (a migrated buffer); the caller checked it fits.</summary>
    public void Append(ReadOnlySpan<byte> data)
    {
        WriteAt(0, data);
        Commit(data.Length);
    }

    /// <summary>A copy of the committed bytes (a migration's snapshot).</summary>
    public byte[] ToArray()
    {
        var copy = new byte[_count];
        CopyTo(0, copy);
        return copy;
    }

    /// <summary>Returns the buffer to the pool; the ring must not be used afterwards.</summary>
    public void Return()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
