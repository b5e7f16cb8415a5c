using System.Net;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Stack;

/// <summary>
/// The IPv6 layer (RFC 8200): what the guest's IPv6 packets must look like to be served, and the
/// addresses the gateway answers for on the link.
/// </summary>
/// <remarks>
/// How this works: the gateway is a router at fe80::2 (link-local, the source of its router
/// advertisements, as slirp's) and at fd00::2 in the guest's /64, and a DNS server at fd00::3.
/// A packet is checked in this order, each failure dropped and counted by its reason:
/// <code>
///  fixed header   version 6, payload length within the frame           bad_length
///  addresses      no multicast, IPv4-mapped or gateway-owned source      bad_address
///  hop limit      0                                                      ttl_expired
///  jumbogram      payload length 0 with a hop-by-hop header, or the jumbo option  jumbogram
///  chain          at most 8 extension headers, hop-by-hop only first, none twice but
///                 destination options; a header past the payload (bad_length)   extension_header
///  routing        type 0 (RFC 5095), or segments left                    routing_header
///  fragment       any fragment header: not reassembled                   fragment
///  options        malformed, or unknown with a discard action (RFC 8200 4.2)     bad_options
///  source         in the /64 (learned as a guest address); link-local or :: only
///                 for neighbour discovery, DHCPv6 and echoes to the gateway      bad_address
/// </code>
/// Then ICMPv6 (neighbour discovery, echo, errors), UDP (DHCPv6, then the NAT) and TCP go to the
/// same handlers as IPv4's. Fragments are dropped, not reassembled: a guest's TCP never sends
/// them (its MSS fits the MTU the gateway advertises), and what would (a UDP datagram over the
/// MTU) is what IPv4's DF-less path drops too; reassembly would need buffers a guest could fill.
/// </remarks>
internal sealed partial class Gateway
{
    /// <summary>Extension headers a packet may carry before the upper layer (RFC 8200 4.1 names six kinds; every one the gateway reads once).</summary>
    public const int MaxExtensionHeaders = 8;

    /// <summary>The gateway's link-local address fe80::2, as slirp's: the source of router advertisements and the guest's default router.</summary>
    public static readonly IpAddr GatewayLinkLocal = IpAddr.FromAddress(IPAddress.Parse("fe80::2"));

    /// <summary>The guest's IPv6 addresses in the prefix, learned from their use as sources.</summary>
    public Ipv6AddressSet GuestIpv6 { get; } = new();

    /// <summary>True once the guest has sent an IPv6 packet (periodic router advertisements start then).</summary>
    public bool GuestSpeaksIpv6 { get; private set; }

    /// <summary>True for an address the gateway answers for on the link: fe80::2, the IPv6 gateway and DNS addresses.</summary>
    public bool IsOwnIpv6(IpAddr address) => address == GatewayIp6 || address == DnsIp6 || address == GatewayLinkLocal;

    private void OnIpv6(ReadOnlySpan<byte> bytes)
    {
        if (!Ipv6Packet.TryParse(bytes, out var packet))
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        var source = packet.Source;
        var destination = packet.Destination;
        if (source.IsIpv6Multicast || source.IsIpv4 || destination.IsIpv4 || IsOwnIpv6(source))
        {
            // RFC 4291 2.7: no multicast source; mapped IPv4 addresses never appear on the link;
            // and a guest using the gateway's own address is taking it.
            Counters.Drop(StackDrop.BadAddress);
            return;
        }

        if (packet.HopLimit == 0)
        {
            Counters.Drop(StackDrop.TtlExpired);
            return;
        }

        if (packet.PayloadLength == 0 && packet.NextHeader == IpProtocol.Ipv6HopByHop)
        {
            // RFC 2675 3: only a jumbogram has a hop-by-hop header and payload length 0.
            Counters.Drop(StackDrop.Jumbogram);
            return;
        }

        var chain = packet.GetHeaderChain();
        if (!TryWalkExtensionHeaders(ref chain, out var refusal))
        {
            Counters.Drop(refusal);
            return;
        }

        GuestSpeaksIpv6 = true;
        var fromPrefix = Options.Network6.Contains(source);
        if (fromPrefix)
        {
            GuestIpv6.Learn(source);
        }

        var protocol = chain.UpperProtocol;
        var payload = chain.UpperPayload;
        switch (protocol)
        {
            case IpProtocol.Icmpv6:
                Icmp.OnIcmpv6(source, destination, packet.HopLimit, fromPrefix, payload);
                break;
            case IpProtocol.Udp when fromPrefix || (!source.IsIpv6Unspecified && source.IsIpv6LinkLocal):
                // Link-local sources only for DHCPv6, which UDP sorts out.
                Udp.OnDatagram(source, destination, payload);
                break;
            case IpProtocol.Tcp when fromPrefix:
                Tcp.OnSegment(source, destination, payload);
                break;
            case IpProtocol.Tcp or IpProtocol.Udp:
                Counters.Drop(StackDrop.BadAddress);
                break;
            case IpProtocol.Ipv6NoNextHeader:
                Counters.Drop(StackDrop.Ignored);
                break;
            default:
                Counters.Drop(StackDrop.UnsupportedProtocol);
                break;
        }
    }

    /// <summary>Walks the extension headers to the upper layer, or says why the packet is refused.</summary>
    private static bool TryWalkExtensionHeaders(ref Ipv6HeaderChain chain, out StackDrop refusal)
    {
        var seen = 0;
        var destinationOptions = 0;
        while (chain.MoveNext())
        {
            var header = chain.Current;
            var bit = 1 << ((int)header.Type & 31);
            if (chain.Count > MaxExtensionHeaders
                || (header.Type == IpProtocol.Ipv6HopByHop && chain.Count != 1)
                || (header.Type == IpProtocol.Ipv6DestinationOptions ? ++destinationOptions > 2 : (seen & bit) != 0))
            {
                // RFC 8200 4.1: hop-by-hop only first, each header once (destination options twice).
                refusal = StackDrop.ExtensionHeader;
                return false;
            }

            seen |= bit;
            switch (header.Type)
            {
                case IpProtocol.Ipv6Fragment:
                    refusal = StackDrop.Fragment;
                    return false;
                case IpProtocol.Ipv6Routing when header.RoutingType == 0 || header.SegmentsLeft != 0:
                    // RFC 5095 3: type 0 is refused; any other routing would make the gateway forward
                    // to the next segment, which it does not do.
                    refusal = StackDrop.RoutingHeader;
                    return false;
                case IpProtocol.Ipv6HopByHop or IpProtocol.Ipv6DestinationOptions when !OptionsAcceptable(header, out refusal):
                    return false;
            }
        }

        refusal = StackDrop.BadLength;
        return !chain.IsMalformed;
    }

    private static bool OptionsAcceptable(Ipv6ExtensionHeader header, out StackDrop refusal)
    {
        var options = header.GetOptions();
        while (options.MoveNext())
        {
            if (options.Type == Ipv6OptionReader.JumboPayload)
            {
                refusal = StackDrop.Jumbogram;
                return false;
            }

            if (options.Type != Ipv6OptionReader.RouterAlert && options.UnknownAction != 0)
            {
                // RFC 8200 4.2: an unknown option whose two high bits are not 00 discards the packet.
                refusal = StackDrop.BadOptions;
                return false;
            }
        }

        refusal = StackDrop.BadOptions;
        return !options.IsMalformed;
    }

    /// <summary>As <see cref="TryMapDestination"/>, for an IPv6 destination: the gateway's IPv6 address is host ::1.</summary>
    private bool TryMapDestination6(IpAddr destination, out IPAddress hostAddress, out StackDrop refusal)
    {
        hostAddress = IPAddress.None;
        refusal = StackDrop.Denied;
        if (destination == GatewayIp6)
        {
            if (!Options.AllowHostLoopback)
            {
                return false;
            }

            hostAddress = IPAddress.IPv6Loopback;
            return true;
        }

        if (Options.Network6.Contains(destination) || destination.IsIpv6Unspecified || destination.IsIpv6Multicast
            || destination.IsIpv6LinkLocal || destination == IpAddr.Ipv6Loopback)
        {
            refusal = StackDrop.BadAddress;
            return false;
        }

        if (!Options.Policy.Permits(destination))
        {
            return false;
        }

        hostAddress = destination.ToIPAddress();
        return true;
    }

    /// <summary>
    /// Fills in the Ethernet and IPv6 headers of a frame from <see cref="RentIp"/> and hands it to
    /// the guest: to the group address of a multicast destination (RFC 2464 7), else to the
    /// guest's MAC. Takes ownership.
    /// </summary>
    public bool EmitIpv6(Frame frame, IpProtocol nextHeader, IpAddr source, IpAddr destination, byte hopLimit)
    {
        var span = frame.Span;
        var mac = destination.IsIpv6Multicast ? MacAddress.Ipv6Multicast(destination) : _guestMac;
        new EthernetHeader(mac, GatewayMac, EtherType.Ipv6).WriteTo(span);
        new Ipv6Header(source, destination, nextHeader, frame.Length - Ipv6PayloadOffset) { HopLimit = hopLimit }
            .WriteTo(span[EthernetFrame.HeaderLength..]);
        return Emit(frame);
    }
}
