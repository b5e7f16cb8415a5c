using System.Buffers.Binary;
using System.Text;

namespace NetWire.Core.State;

/// <summary>
/// Reads one section's fields; every read is bounds-checked and a short or bad field throws
/// <see cref="StateFormatException"/> naming the section and the byte offset.
/// </summary>
public sealed class StateSectionReader
{
    private readonly ReadOnlyMemory<byte> _data;
    private int _position;

    /// <summary>A reader over <paramref name="data"/>, the body of the section named <paramref name="section"/>.</summary>
    public StateSectionReader(string section, ReadOnlyMemory<byte> data)
    {
        Section = section;
        _data = data;
    }

    /// <summary>The section's name, for error messages.</summary>
    public string Section { get; }

    /// <summary>Bytes not read yet.</summary>
    public int Remaining => _data.Length - _position;

    /// <summary>One byte.</summary>
    public byte ReadByte() => Take(1)[0];

    /// <summary>A byte that must be 0 (false) or 1 (true).</summary>
    public bool ReadBool() => ReadByte() switch
    {
        0 => false,
        1 => true,
        var b => throw Error($"boolean byte {b}"),
    };

    /// <summary>A little-endian u16.</summary>
    public ushort ReadUInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

    /// <summary>A little-endian u32.</summary>
    public uint ReadUInt32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

    /// <summary>A little-endian i64.</summary>
    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>A u32-length byte string of at most <paramref name="maxLength"/> bytes.</summary>
    public byte[] ReadBytes(int maxLength)
    {
        var length = ReadUInt32();
        if (length > (uint)maxLength)
        {
            throw Error($"field of {length} bytes, at most {maxLength} allowed");
        }

        return Take((int)length).ToArray();
    }

    /// <summary>A string written by <see cref="StateSectionWriter.WriteString"/>, at most <paramref name="maxBytes"/> UTF-8 bytes.</summary>
    public string? ReadString(int maxBytes)
    {
        var at = _position;
        var length = ReadUInt32();
        if (length == uint.MaxValue)
        {
            return null;
        }

        if (length > (uint)maxBytes)
        {
            throw Error($"string of {length} bytes at offset {at}, at most {maxBytes} allowed");
        }

        try
        {
            return new UTF8Encoding(false, true).GetString(Take((int)length));
        }
        catch (DecoderFallbackException ex)
        {
            throw new StateFormatException($"section '{Section}': string at offset {at} is not UTF-8", ex);
        }
    }

    /// <summary>A count of items that each take at least <paramref name="minItemBytes"/>, checked against what is left.</summary>
    public int ReadCount(int max, int minItemBytes)
    {
        var count = ReadUInt32();
        if (count > (uint)max || (long)count * Math.Max(1, minItemBytes) > Remaining)
        {
            throw Error($"count {count} does not fit (at most {max}, {Remaining} bytes left)");
        }

        return (int)count;
    }

    /// <summary>An error about this section at the current offset.</summary>
    public StateFormatException Error(string what) => new($"section '{Section}': {what} (offset {_position})");

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count > Remaining)
        {
            throw new StateFormatException($"section '{Section}': truncated: {count} bytes needed at offset {_position}, {Remaining} left");
        }

        var span = _data.Span.Slice(_position, count);
        _position += count;
        return span;
    }
}
