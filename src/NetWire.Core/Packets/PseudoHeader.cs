using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>
/// The pseudo-header that a TCP, UDP or ICMPv6 checksum covers besides the segment itself: the
/// IP source and destination, the protocol and the upper-layer length (RFC 9293 3.1 and RFC 768
/// for IPv4, RFC 8200 8.1 for IPv6). Held as the running sum of the addresses and protocol, so
/// one value per flow and direction serves every segment; the length is added per segment.
/// </summary>
/// <remarks>
/// The two layouts differ only in field widths (IPv6 has a 32-bit length and a 24-bit zero
/// before the next header), which the ones' complement sum does not see: the sum is the same
/// words either way, with 16-byte addresses for IPv6.
/// </remarks>
public readonly struct PseudoHeader
{
    private readonly ulong _sum;

    private PseudoHeader(ulong sum) => _sum = sum;

    /// <summary>The IPv4 pseudo-header of <paramref name="protocol"/> from host-order <paramref name="source"/> to <paramref name="destination"/>.</summary>
    public static PseudoHeader Ipv4(uint source, uint destination, IpProtocol protocol) =>
        new(Checksum.Native(source) + Checksum.Native(destination) + Checksum.Native((ushort)protocol));

    /// <summary>
    /// The pseudo-header for addresses of either family: the IPv4 layout when both are IPv4,
    /// else the IPv6 one (an IPv4 address then counts in its mapped form).
    /// </summary>
    public static PseudoHeader Create(IpAddr source, IpAddr destination, IpProtocol protocol)
    {
        if (source.IsIpv4 && destination.IsIpv4)
        {
            return Ipv4(source.Ipv4, destination.Ipv4, protocol);
        }

        return new(Words(source.High) + Words(source.Low) + Words(destination.High) + Words(destination.Low) + Checksum.Native((ushort)protocol));
    }

    /// <summary>The running sum for a segment of <paramref name="upperLayerLength"/> bytes, to continue with <see cref="Checksum.Add"/> over the segment.</summary>
    public ulong Sum(int upperLayerLength) => _sum + Checksum.Native((uint)upperLayerLength);

    /// <summary>The checksum field value for <paramref name="segment"/> (its own checksum field zero), as <see cref="Checksum.Finish"/> gives it.</summary>
    public ushort Compute(ReadOnlySpan<byte> segment) => Checksum.Finish(Checksum.Add(Sum(segment.Length), segment));

    /// <summary>
    /// The checksum field value of an <paramref name="upperLayerLength"/>-byte segment whose
    /// checksum is left to a device: the folded pseudo-header sum, not complemented (what Linux
    /// writes for CHECKSUM_PARTIAL; the device adds the segment's bytes and complements).
    /// </summary>
    public ushort Partial(int upperLayerLength) => Checksum.Fold(Sum(upperLayerLength));

    /// <summary>True when <paramref name="segment"/>, checksum field included, verifies against this pseudo-header.</summary>
    public bool Verifies(ReadOnlySpan<byte> segment) => Checksum.IsValid(Checksum.Add(Sum(segment.Length), segment));

    private static ulong Words(ulong bigEndian) => Checksum.Native((uint)(bigEndian >> 32)) + Checksum.Native((uint)bigEndian);
}
