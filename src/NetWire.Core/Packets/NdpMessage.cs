using System.Buffers.Binary;
using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of a neighbour discovery message (RFC 4861 4): a router solicitation or advertisement,
/// a neighbour solicitation or advertisement, or a redirect, over the whole ICMPv6 message. The
/// fixed fields of its type, and its options (<see cref="GetOptions"/>).
/// </summary>
/// <remarks>
/// The view checks that the message is as long as its type's fixed part. What RFC 4861 6.1 and
/// 7.1 ask a receiver to check besides (hop limit 255, code 0, the checksum, a target that is not
/// multicast, options of non-zero length) is the caller's to judge; option lengths are checked by
/// the walk.
/// </remarks>
public readonly ref struct NdpMessage
{
    private readonly ReadOnlySpan<byte> _bytes;
    private readonly int _optionsOffset;

    private NdpMessage(ReadOnlySpan<byte> bytes, int optionsOffset)
    {
        _bytes = bytes;
        _optionsOffset = optionsOffset;
    }

    /// <summary>The whole ICMPv6 message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The message type.</summary>
    public Icmpv6Type Type => (Icmpv6Type)_bytes[0];

    /// <summary>The ICMPv6 code (0 for every neighbour discovery message).</summary>
    public byte Code => _bytes[1];

    /// <summary>A neighbour solicitation's, advertisement's or redirect's target address.</summary>
    public IpAddr TargetAddress => IpAddr.FromIpv6(_bytes.Slice(8, 16));

    /// <summary>A redirect's destination address.</summary>
    public IpAddr RedirectDestination => IpAddr.FromIpv6(_bytes.Slice(24, 16));

    /// <summary>A router advertisement's current hop limit.</summary>
    public byte CurrentHopLimit => _bytes[4];

    /// <summary>A router advertisement's M flag: addresses from DHCPv6.</summary>
    public bool ManagedFlag => (_bytes[5] & NdpFlags.Managed) != 0;

    /// <summary>A router advertisement's O flag: other configuration from DHCPv6.</summary>
    public bool OtherConfigFlag => (_bytes[5] & NdpFlags.OtherConfig) != 0;

    /// <summary>A router advertisement's router lifetime in seconds (0: not a default router).</summary>
    public ushort RouterLifetime => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>A router advertisement's reachable time in milliseconds.</summary>
    public uint ReachableTime => BinaryPrimitives.ReadUInt32BigEndian(_bytes[8..]);

    /// <summary>A router advertisement's retransmission timer in milliseconds.</summary>
    public uint RetransTimer => BinaryPrimitives.ReadUInt32BigEndian(_bytes[12..]);

    /// <summary>A neighbour advertisement's R flag: the sender is a router.</summary>
    public bool RouterFlag => (_bytes[4] & NdpFlags.Router) != 0;

    /// <summary>A neighbour advertisement's S flag: an answer to a solicitation.</summary>
    public bool SolicitedFlag => (_bytes[4] & NdpFlags.Solicited) != 0;

    /// <summary>A neighbour advertisement's O flag: the link-layer address overrides a cached one.</summary>
    public bool OverrideFlag => (_bytes[4] & NdpFlags.Override) != 0;

    /// <summary>The options after the fixed part.</summary>
    public ReadOnlySpan<byte> Options => _bytes[_optionsOffset..];

    /// <summary>A walk over <see cref="Options"/>.</summary>
    public NdpOptionReader GetOptions() => new(Options);

    /// <summary>Where the options of a message of <paramref name="type"/> start; 0 for a type that is not neighbour discovery.</summary>
    public static int OptionsOffset(Icmpv6Type type) => type switch
    {
        Icmpv6Type.RouterSolicitation => 8,
        Icmpv6Type.RouterAdvertisement => 16,
        Icmpv6Type.NeighborSolicitation or Icmpv6Type.NeighborAdvertisement => 24,
        Icmpv6Type.Redirect => 40,
        _ => 0,
    };

    /// <summary>Views the ICMPv6 message <paramref name="message"/>; false when it is not a neighbour discovery type or shorter than the type's fixed part.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out NdpMessage view)
    {
        var offset = message.Length < Icmpv6Packet.HeaderLength ? 0 : OptionsOffset((Icmpv6Type)message[0]);
        if (offset == 0 || message.Length < offset)
        {
            view = default;
            return false;
        }

        view = new NdpMessage(message, offset);
        return true;
    }
}

/// <summary>The flag bits of router and neighbour advertisements (RFC 4861 4.2, 4.4) and of the prefix information option (4.6.2).</summary>
public static class NdpFlags
{
    /// <summary>Router advertisement: M, managed address configuration.</summary>
    public const byte Managed = 0x80;

    /// <summary>Router advertisement: O, other configuration.</summary>
    public const byte OtherConfig = 0x40;

    /// <summary>Neighbour advertisement: R, the sender is a router.</summary>
    public const byte Router = 0x80;

    /// <summary>Neighbour advertisement: S, sent in answer to a solicitation.</summary>
    public const byte Solicited = 0x40;

    /// <summary>Neighbour advertisement: O, override a cached link-layer address.</summary>
    public const byte Override = 0x20;

    /// <summary>Prefix information: L, the prefix is on-link.</summary>
    public const byte OnLink = 0x80;

    /// <summary>Prefix information: A, the prefix may be used for stateless address autoconfiguration (RFC 4862).</summary>
    public const byte Autonomous = 0x40;
}

/// <summary>Neighbour discovery option types (RFC 4861 4.6, RFC 8106 5.1).</summary>
public enum NdpOptionType : byte
{
    /// <summary>Source link-layer address.</summary>
    SourceLinkLayerAddress = 1,

    /// <summary>Target link-layer address.</summary>
    TargetLinkLayerAddress = 2,

    /// <summary>Prefix information.</summary>
    PrefixInformation = 3,

    /// <summary>Redirected header.</summary>
    RedirectedHeader = 4,

    /// <summary>MTU.</summary>
    Mtu = 5,

    /// <summary>Recursive DNS server (RFC 8106 5.1).</summary>
    RecursiveDnsServer = 25,

    /// <summary>DNS search list (RFC 8106 5.2).</summary>
    DnsSearchList = 31,
}
