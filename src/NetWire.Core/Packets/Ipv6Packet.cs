using System.Buffers.Binary;
using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an IPv6 packet (RFC 8200 3): the 40-byte fixed header and the payload up to the
/// payload length (link-layer padding after it is left out). The payload starts with the
/// extension headers, if any; <see cref="Ipv6HeaderChain"/> walks them to the upper layer.
/// </summary>
/// <remarks>
/// The view checks the version and that the payload length fits the bytes. A payload length of
/// 0 is taken as it stands (an empty payload): a jumbogram (RFC 2675), which says 0 here and
/// carries its length in a hop-by-hop option, is what the walk of the chain then reports as
/// truncated or as a jumbo option.
/// </remarks>
public readonly ref struct Ipv6Packet
{
    /// <summary>The fixed header: 40 bytes.</summary>
    public const int HeaderLength = 40;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv6Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The packet: header and payload, up to the payload length (or what there is of it, for a quoted packet).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The traffic class (DSCP and ECN).</summary>
    public byte TrafficClass => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_bytes) >> 4);

    /// <summary>The 20-bit flow label.</summary>
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0xf_ffff;

    /// <summary>The payload length field: bytes after the fixed header, extension headers included.</summary>
    public ushort PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>What follows the fixed header: an extension header or the upper-layer protocol.</summary>
    public IpProtocol NextHeader => (IpProtocol)_bytes[6];

    /// <summary>The hop limit.</summary>
    public byte HopLimit => _bytes[7];

    /// <summary>The source address.</summary>
    public IpAddr Source => IpAddr.FromIpv6(_bytes.Slice(8, 16));

    /// <summary>The destination address.</summary>
    public IpAddr Destination => IpAddr.FromIpv6(_bytes.Slice(24, 16));

    /// <summary>The fixed header.</summary>
    public ReadOnlySpan<byte> Header => _bytes[..HeaderLength];

    /// <summary>The payload: extension headers, then the upper layer.</summary>
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>The walk of the extension headers from <see cref="NextHeader"/> to the upper layer.</summary>
    public Ipv6HeaderChain GetHeaderChain() => new(NextHeader, Payload);

    /// <summary>The pseudo-header (RFC 8200 8.1) for an upper-layer <paramref name="protocol"/> message in this packet (TCP, UDP, ICMPv6).</summary>
    public PseudoHeader PseudoHeaderFor(IpProtocol protocol) => PseudoHeader.Create(Source, Destination, protocol);

    /// <summary>
    /// Views the IPv6 packet at the start of <paramref name="packet"/>, trimmed to its payload
    /// length; false when it is shorter than 40 bytes, not version 6, or the payload length runs
    /// past the bytes.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv6Packet view)
    {
        if (packet.Length < HeaderLength || packet[0] >> 4 != 6)
        {
            view = default;
            return false;
        }

        var total = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        if (total > packet.Length)
        {
            view = default;
            return false;
        }

        view = new Ipv6Packet(packet[..total]);
        return true;
    }

    /// <summary>
    /// Views a packet of which only the start may be present, as an ICMPv6 error quotes one (RFC
    /// 4443 2.4(c): as much as fits the minimum MTU): the fixed header must be whole, the payload
    /// is what follows it, up to the payload length. False when the header is not.
    /// </summary>
    public static bool TryParseQuoted(ReadOnlySpan<byte> packet, out Ipv6Packet view)
    {
        if (packet.Length < HeaderLength || packet[0] >> 4 != 6)
        {
            view = default;
            return false;
        }

        var total = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
        view = new Ipv6Packet(total < packet.Length ? packet[..total] : packet);
        return true;
    }
}
