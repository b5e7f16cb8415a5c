using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an IPv4 packet (RFC 791): the header, its options, and the payload up to the total
/// length (link-layer padding after it is left out).
/// </summary>
/// <remarks>
/// The IP layer dispatches on the EtherType (<see cref="EtherType.Ipv4"/>; an IPv6 view takes
/// <see cref="EtherType.Ipv6"/>); what travels up to TCP, UDP and ICMP is the payload, the
/// <see cref="Protocol"/> and a <see cref="PseudoHeader"/>, which look the same for either
/// version.
/// </remarks>
public readonly ref struct Ipv4Packet
{
    /// <summary>The header without options: 20 bytes.</summary>
    public const int MinHeaderLength = 20;

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv4Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The packet: header and payload, up to the total length (or what there is of it, for a quoted packet).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Header length in bytes (IHL x 4), 20 to 60.</summary>
    public int HeaderLength => (_bytes[0] & 0xf) * 4;

    /// <summary>The type-of-service byte (DSCP and ECN).</summary>
    public byte TypeOfService => _bytes[1];

    /// <summary>The total length field: header and payload.</summary>
    public ushort TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>The identification field.</summary>
    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>The DF flag.</summary>
    public bool DontFragment => (_bytes[6] & 0x40) != 0;

    /// <summary>The MF flag.</summary>
    public bool MoreFragments => (_bytes[6] & 0x20) != 0;

    /// <summary>The fragment offset in bytes.</summary>
    public int FragmentOffset => (BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]) & 0x1fff) * 8;

    /// <summary>MF set or a non-zero offset: a fragment of a larger datagram (RFC 791 3.1).</summary>
    public bool IsFragment => (BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]) & 0x3fff) != 0;

    /// <summary>The time-to-live field.</summary>
    public byte TimeToLive => _bytes[8];

    /// <summary>The payload's protocol.</summary>
    public IpProtocol Protocol => (IpProtocol)_bytes[9];

    /// <summary>The header checksum field.</summary>
    public ushort HeaderChecksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[10..]);

    /// <summary>The source address, host order.</summary>
    public uint Source => BinaryPrimitives.ReadUInt32BigEndian(_bytes[12..]);

    /// <summary>The destination address, host order.</summary>
    public uint Destination => BinaryPrimitives.ReadUInt32BigEndian(_bytes[16..]);

    /// <summary>The header, options included.</summary>
    public ReadOnlySpan<byte> Header => _bytes[..HeaderLength];

    /// <summary>The options between the fixed header and the payload (usually empty).</summary>
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];

    /// <summary>The payload.</summary>
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>True when the header checksum verifies.</summary>
    public bool IsHeaderChecksumValid => Checksum.IsValid(Checksum.Add(0, Header));

    /// <summary>The pseudo-header for this packet's payload checksum (TCP, UDP).</summary>
    public PseudoHeader PseudoHeader => PseudoHeader.Ipv4(Source, Destination, Protocol);

    /// <summary>
    /// Views the IPv4 packet at the start of <paramref name="packet"/>, trimmed to its total
    /// length; false when it is not version 4, the header length is under 20 or past the bytes,
    /// or the total length is shorter than the header or longer than the bytes.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv4Packet view)
    {
        if (!TryParseQuoted(packet, out view))
        {
            return false;
        }

        var total = view.TotalLength;
        if (total < view.HeaderLength || total > packet.Length)
        {
            view = default;
            return false;
        }

        view = new Ipv4Packet(packet[..total]);
        return true;
    }

    /// <summary>
    /// Views a packet of which only the start may be present, as an ICMP error quotes one (RFC
    /// 792: the header and the first 8 bytes of the payload): the header must be whole, the
    /// payload is what follows it, up to the total length. False when the header is not.
    /// </summary>
    public static bool TryParseQuoted(ReadOnlySpan<byte> packet, out Ipv4Packet view)
    {
        if (packet.Length < MinHeaderLength || packet[0] >> 4 != 4)
        {
            view = default;
            return false;
        }

        var headerLength = (packet[0] & 0xf) * 4;
        if (headerLength < MinHeaderLength || headerLength > packet.Length)
        {
            view = default;
            return false;
        }

        var total = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        view = new Ipv4Packet(total >= headerLength && total < packet.Length ? packet[..total] : packet);
        return true;
    }
}
