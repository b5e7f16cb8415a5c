using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an Ethernet II frame (no FCS): destination, source, EtherType, payload.
/// </summary>
/// <remarks>
/// How the packet views work (this one, <see cref="ArpPacket"/>, <see cref="Ipv4Packet"/>,
/// <see cref="TcpPacket"/>, <see cref="UdpPacket"/>, <see cref="IcmpPacket"/>,
/// <see cref="DhcpPacket"/>, <see cref="DnsPacket"/>): a <c>ref struct</c> over the bytes,
/// made only by <c>TryParse</c>, which checks once that every fixed field and every length the
/// header claims lies inside the span, and returns false (never throws) otherwise. After that
/// the accessors read fields at fixed offsets, big-endian, and nothing is copied or allocated.
/// Views read; the matching header types (<see cref="EthernetHeader"/>, <see cref="Ipv4Header"/>
/// and so on) are small validated values that write a header with <c>WriteTo</c>. A view checks
/// structure only: checksums and what the values mean are for the caller to judge.
/// An 802.1Q tag is not looked through: its EtherType is <see cref="EtherType.Vlan"/>.
/// </remarks>
public readonly ref struct EthernetFrame
{
    /// <summary>Destination, source and EtherType: 14 bytes.</summary>
    public const int HeaderLength = 14;

    private readonly ReadOnlySpan<byte> _bytes;

    private EthernetFrame(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole frame.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The destination address.</summary>
    public MacAddress Destination => MacAddress.Read(_bytes);

    /// <summary>The source address.</summary>
    public MacAddress Source => MacAddress.Read(_bytes[6..]);

    /// <summary>The EtherType field (values other than the named ones are kept as they are).</summary>
    public EtherType EtherType => (EtherType)BinaryPrimitives.ReadUInt16BigEndian(_bytes[12..]);

    /// <summary>Everything after the header (including any padding up to the 60-byte minimum).</summary>
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Views <paramref name="frame"/>; false when it is shorter than the header.</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out EthernetFrame view)
    {
        if (frame.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        view = new EthernetFrame(frame);
        return true;
    }
}
