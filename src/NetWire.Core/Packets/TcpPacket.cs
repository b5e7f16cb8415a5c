using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A view of a TCP segment (RFC 9293 3.1): the fixed header, the options, the data.</summary>
public readonly ref struct TcpPacket
{
    /// <summary>The header without options: 20 bytes.</summary>
    public const int MinHeaderLength = 20;

    /// <summary>The longest header: data offset 15, 60 bytes.</summary>
    public const int MaxHeaderLength = 60;

    private readonly ReadOnlySpan<byte> _bytes;

    private TcpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole segment.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The source port.</summary>
    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes);

    /// <summary>The destination port.</summary>
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>The sequence number.</summary>
    public uint SequenceNumber => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);

    /// <summary>The acknowledgment number (meaningful with <see cref="TcpFlags.Ack"/>).</summary>
    public uint AckNumber => BinaryPrimitives.ReadUInt32BigEndian(_bytes[8..]);

    /// <summary>Header length in bytes (data offset x 4), 20 to 60.</summary>
    public int HeaderLength => (_bytes[12] >> 4) * 4;

    /// <summary>The control bits.</summary>
    public TcpFlags Flags => (TcpFlags)_bytes[13];

    /// <summary>The window field, unscaled.</summary>
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_bytes[14..]);

    /// <summary>The checksum field.</summary>
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[16..]);

    /// <summary>The urgent pointer field.</summary>
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_bytes[18..]);

    /// <summary>The options' bytes (read them with <see cref="TcpOptions.TryParse"/> or <see cref="TcpOptionReader"/>).</summary>
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];

    /// <summary>The data.</summary>
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Sequence space the segment takes: its data, plus one each for SYN and FIN.</summary>
    public int SegmentLength => Payload.Length + ((_bytes[13] & (byte)TcpFlags.Syn) != 0 ? 1 : 0) + ((_bytes[13] & (byte)TcpFlags.Fin) != 0 ? 1 : 0);

    /// <summary>Views the whole of <paramref name="segment"/>; false when it is shorter than 20 bytes or the data offset is under 5 or past the bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> segment, out TcpPacket view)
    {
        if (segment.Length < MinHeaderLength)
        {
            view = default;
            return false;
        }

        var headerLength = (segment[12] >> 4) * 4;
        if (headerLength < MinHeaderLength || headerLength > segment.Length)
        {
            view = default;
            return false;
        }

        view = new TcpPacket(segment);
        return true;
    }

    /// <summary>True when the checksum verifies over the segment and <paramref name="pseudoHeader"/>.</summary>
    public bool IsChecksumValid(PseudoHeader pseudoHeader) => pseudoHeader.Verifies(_bytes);
}
