using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A view of a UDP datagram (RFC 768), trimmed to its length field.</summary>
public readonly ref struct UdpPacket
{
    /// <summary>The header: 8 bytes.</summary>
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private UdpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The datagram, header and payload.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The source port.</summary>
    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes);

    /// <summary>The destination port.</summary>
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>The length field: header and payload.</summary>
    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>The checksum field; 0 means the sender computed none (allowed over IPv4 only).</summary>
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>The payload.</summary>
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>
    /// Views the datagram at the start of <paramref name="datagram"/>, trimmed to its length
    /// field; false when the bytes are shorter than the header or the length field is under 8
    /// or past the bytes.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out UdpPacket view)
    {
        if (datagram.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(datagram[4..]);
        if (length < HeaderLength || length > datagram.Length)
        {
            view = default;
            return false;
        }

        view = new UdpPacket(datagram[..length]);
        return true;
    }

    /// <summary>True when the checksum field is not zero and verifies over the datagram and <paramref name="pseudoHeader"/>.</summary>
    public bool IsChecksumValid(PseudoHeader pseudoHeader) => Checksum != 0 && pseudoHeader.Verifies(_bytes);
}
