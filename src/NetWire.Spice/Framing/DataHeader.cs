using System.Buffers.Binary;

namespace NetWire.Spice.Framing;

/// <summary>
/// The data header in front of every message after the link (protocol.md §2):
/// <code>
///   SpiceDataHeader (18): u64 serial | u16 type | u32 size | u32 sub_list
///   SpiceMiniDataHeader (6): u16 type | u32 size
/// </code>
/// Mini is used when the client advertised MINI_HEADER (the server always does); then both
/// directions are mini. <c>size</c> counts the body only.
/// </summary>
internal readonly record struct DataHeader(ulong Serial, ushort Type, uint Size)
{
    /// <summary>SpiceMiniDataHeader length.</summary>
    public const int MiniLength = 6;

    /// <summary>SpiceDataHeader length.</summary>
    public const int FullLength = 18;

    /// <summary>Header length for the negotiated form.</summary>
    public static int LengthFor(bool mini) => mini ? MiniLength : FullLength;

    /// <summary>Reads a header of the negotiated form; false when <paramref name="source"/> is too short.</summary>
    /// <remarks>sub_list is ignored: only the display channel uses message lists.</remarks>
    public static bool TryParse(ReadOnlySpan<byte> source, bool mini, out DataHeader header)
    {
        if (mini)
        {
            if (source.Length < MiniLength)
            {
                header = default;
                return false;
            }

            header = new DataHeader(0, BinaryPrimitives.ReadUInt16LittleEndian(source), BinaryPrimitives.ReadUInt32LittleEndian(source[2..]));
            return true;
        }

        if (source.Length < FullLength)
        {
            header = default;
            return false;
        }

        header = new DataHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(source),
            BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[10..]));
        return true;
    }

    /// <summary>Writes this header in the negotiated form (sub_list 0); returns its length.</summary>
    public int WriteTo(Span<byte> destination, bool mini)
    {
        if (mini)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination, Type);
            BinaryPrimitives.WriteUInt32LittleEndian(destination[2..], Size);
            return MiniLength;
        }

        BinaryPrimitives.WriteUInt64LittleEndian(destination, Serial);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], Type);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[10..], Size);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[14..], 0);
        return FullLength;
    }
}
