using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an ICMPv6 message (RFC 4443 2.1): type, code, checksum, the four bytes after them
/// (an echo's identifier and sequence number, a packet-too-big MTU, a parameter problem's
/// pointer), and the data: an echo's payload, the start of the packet an error is about
/// (<see cref="TryGetQuotedPacket"/>), or the rest of a neighbour discovery message
/// (<see cref="NdpMessage"/>).
/// </summary>
/// <remarks>
/// Unlike ICMP for IPv4, the checksum covers the IPv6 pseudo-header (RFC 4443 2.3), so checking
/// and writing it takes one (<see cref="Ipv6Packet.PseudoHeaderFor"/> with <see cref="IpProtocol.Icmpv6"/>).
/// </remarks>
public readonly ref struct Icmpv6Packet
{
    /// <summary>Type, code, checksum and the four bytes after them: 8 bytes.</summary>
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private Icmpv6Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The message type.</summary>
    public Icmpv6Type Type => (Icmpv6Type)_bytes[0];

    /// <summary>The code within the type.</summary>
    public byte Code => _bytes[1];

    /// <summary>The checksum field.</summary>
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>Bytes 4-7 as one number, whatever the type makes of them.</summary>
    public uint RestOfHeader => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);

    /// <summary>An echo's identifier (bytes 4-5).</summary>
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>An echo's sequence number (bytes 6-7).</summary>
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>A packet-too-big message's MTU (RFC 4443 3.2; bytes 4-7).</summary>
    public uint Mtu => RestOfHeader;

    /// <summary>A parameter problem's pointer to the offending byte (RFC 4443 3.4; bytes 4-7).</summary>
    public uint Pointer => RestOfHeader;

    /// <summary>The data after the first 8 bytes: an echo's payload, an error's quoted packet.</summary>
    public ReadOnlySpan<byte> Data => _bytes[HeaderLength..];

    /// <summary>An error message (types 0-127, RFC 4443 2.1), which quotes a packet.</summary>
    public bool IsError => _bytes[0] < 128;

    /// <summary>True when the checksum verifies over the message and <paramref name="pseudoHeader"/>.</summary>
    public bool IsChecksumValid(PseudoHeader pseudoHeader) => pseudoHeader.Verifies(_bytes);

    /// <summary>
    /// Views the whole of <paramref name="message"/>; false when it is shorter than the first 8
    /// bytes (every ICMPv6 message the gateway reads has them; RFC 4443's minimum is 4).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out Icmpv6Packet view)
    {
        if (message.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        view = new Icmpv6Packet(message);
        return true;
    }

    /// <summary>
    /// An error's quoted packet: its fixed IPv6 header and as much of its payload as was sent.
    /// False for informational types, or when the quoted fixed header is not whole or not IPv6.
    /// </summary>
    public bool TryGetQuotedPacket(out Ipv6Packet quoted)
    {
        if (!IsError)
        {
            quoted = default;
            return false;
        }

        return Ipv6Packet.TryParseQuoted(Data, out quoted);
    }
}

/// <summary>ICMPv6 message types (RFC 4443 2.1, RFC 4861 4, RFC 3810 5).</summary>
public enum Icmpv6Type : byte
{
    /// <summary>Destination unreachable; the code says why (4: port unreachable).</summary>
    DestinationUnreachable = 1,

    /// <summary>Packet too big, with the MTU of the next hop.</summary>
    PacketTooBig = 2,

    /// <summary>Time exceeded (hop limit, reassembly).</summary>
    TimeExceeded = 3,

    /// <summary>Parameter problem, with a pointer.</summary>
    ParameterProblem = 4,

    /// <summary>Echo request.</summary>
    EchoRequest = 128,

    /// <summary>Echo reply.</summary>
    EchoReply = 129,

    /// <summary>Multicast listener query (MLD, RFC 2710).</summary>
    MulticastListenerQuery = 130,

    /// <summary>Multicast listener report, version 1.</summary>
    MulticastListenerReport = 131,

    /// <summary>Multicast listener done.</summary>
    MulticastListenerDone = 132,

    /// <summary>Router solicitation (RFC 4861 4.1).</summary>
    RouterSolicitation = 133,

    /// <summary>Router advertisement (RFC 4861 4.2).</summary>
    RouterAdvertisement = 134,

    /// <summary>Neighbour solicitation (RFC 4861 4.3).</summary>
    NeighborSolicitation = 135,

    /// <summary>Neighbour advertisement (RFC 4861 4.4).</summary>
    NeighborAdvertisement = 136,

    /// <summary>Redirect (RFC 4861 4.5).</summary>
    Redirect = 137,

    /// <summary>Multicast listener report, version 2 (RFC 3810 5.2).</summary>
    MulticastListenerReportV2 = 143,
}
