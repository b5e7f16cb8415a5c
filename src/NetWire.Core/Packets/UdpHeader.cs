using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A UDP header (RFC 768) as values: what <see cref="UdpPacket"/> reads, to write.</summary>
/// <param name="SourcePort">The source port.</param>
/// <param name="DestinationPort">The destination port.</param>
public readonly record struct UdpHeader(ushort SourcePort, ushort DestinationPort)
{
    /// <summary>Bytes of header <see cref="WriteTo"/> writes.</summary>
    public static int Length => UdpPacket.HeaderLength;

    /// <summary>The ports of the datagram at the start of <paramref name="datagram"/>; false as <see cref="UdpPacket.TryParse"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out UdpHeader header)
    {
        if (!UdpPacket.TryParse(datagram, out var view))
        {
            header = default;
            return false;
        }

        header = new UdpHeader(view.SourcePort, view.DestinationPort);
        return true;
    }

    /// <summary>
    /// Writes the header over the first 8 bytes of <paramref name="datagram"/>, whose payload
    /// must already follow it (the whole span is the datagram, at most 65,535 bytes): the length,
    /// and the checksum over the datagram and <paramref name="pseudoHeader"/> (a computed 0 is
    /// sent as 0xFFFF, RFC 768).
    /// </summary>
    public void WriteTo(Span<byte> datagram, PseudoHeader pseudoHeader)
    {
        BinaryPrimitives.WriteUInt16BigEndian(datagram, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[2..], DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[4..], (ushort)datagram.Length);
        datagram[6] = 0;
        datagram[7] = 0;
        var checksum = pseudoHeader.Compute(datagram);
        BinaryPrimitives.WriteUInt16BigEndian(datagram[6..], checksum == 0 ? (ushort)0xffff : checksum);
    }
}
