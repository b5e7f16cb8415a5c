using System.Buffers.Binary;
using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>
/// An IPv6 fixed header (RFC 8200 3) as values: what <see cref="Ipv6Packet"/> reads, to write.
/// The defaults are what the gateway sends: hop limit 64, traffic class and flow label 0.
/// </summary>
/// <param name="Source">The source address (an IPv6 one).</param>
/// <param name="Destination">The destination address (an IPv6 one).</param>
/// <param name="NextHeader">What follows the header.</param>
/// <param name="PayloadLength">Bytes after the header.</param>
public readonly record struct Ipv6Header(IpAddr Source, IpAddr Destination, IpProtocol NextHeader, int PayloadLength)
{
    /// <summary>The hop limit (255 for neighbour discovery, RFC 4861 6.1).</summary>
    public byte HopLimit { get; init; } = 64;

    /// <summary>The traffic class.</summary>
    public byte TrafficClass { get; init; }

    /// <summary>The 20-bit flow label.</summary>
    public uint FlowLabel { get; init; }

    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public static int Length => Ipv6Packet.HeaderLength;

    /// <summary>The fixed header of the packet at the start of <paramref name="packet"/>; false as <see cref="Ipv6Packet.TryParse"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv6Header header)
    {
        if (!Ipv6Packet.TryParse(packet, out var view))
        {
            header = default;
            return false;
        }

        header = new Ipv6Header(view.Source, view.Destination, view.NextHeader, view.PayloadLength)
        {
            HopLimit = view.HopLimit,
            TrafficClass = view.TrafficClass,
            FlowLabel = view.FlowLabel,
        };
        return true;
    }

    /// <summary>Writes the 40 header bytes to the start of <paramref name="packet"/>.</summary>
    public void WriteTo(Span<byte> packet)
    {
        var header = packet[..Ipv6Packet.HeaderLength];
        BinaryPrimitives.WriteUInt32BigEndian(header, (6u << 28) | ((uint)TrafficClass << 20) | (FlowLabel & 0xf_ffff));
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], checked((ushort)PayloadLength));
        header[6] = (byte)NextHeader;
        header[7] = HopLimit;
        Source.WriteIpv6To(header.Slice(8, 16));
        Destination.WriteIpv6To(header.Slice(24, 16));
    }
}
