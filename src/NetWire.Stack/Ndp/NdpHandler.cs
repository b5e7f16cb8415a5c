using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Stack.Ndp;

/// <summary>
/// Neighbour discovery (RFC 4861) for the gateway's side of the link: router advertisements, so
/// the guest configures an address by SLAAC (RFC 4862), and neighbour advertisements for the
/// gateway's own addresses.
/// </summary>
/// <remarks>
/// How this works:
/// <list type="bullet">
/// <item>A router solicitation is answered at once with a router advertisement to ff02::1 from
/// fe80::2, and one goes out unsolicited every 200 to 600 s (RFC 4861 6.2.1's defaults) once the
/// guest has spoken IPv6, so the lifetimes never run out. The advertisement is slirp's (libslirp,
/// which slirp4netns and QEMU use): hop limit 64, router lifetime 1800 s, reachable and
/// retransmission times unspecified, the source link-layer address, the /64 with L and A
/// (valid 86,400 s, preferred 14,400 s), and the DNS address in an RDNSS option (RFC 8106, for
/// 1800 s: three times the longest interval). Two additions: an MTU option with the gateway's
/// MTU, and the O flag, since the gateway answers stateless DHCPv6 (<see cref="Dhcp.Dhcpv6Server"/>).</item>
/// <item>A neighbour solicitation for fe80::2, the IPv6 gateway address or the IPv6 DNS address is
/// answered with the gateway's MAC (router, override; solicited unless the question came from ::,
/// whose answer goes to ff02::1). Solicitations for anything else are the guest's own business:
/// its duplicate address detection sees no answer, so its addresses become valid; the gateway
/// never defends an address it does not own.</item>
/// <item>From the guest, router advertisements and redirects (which only routers send) and
/// neighbour advertisements for the gateway's addresses are dropped as
/// <see cref="StackDrop.NdpSpoof"/>; messages failing RFC 4861 6.1 and 7.1.1's checks as
/// <see cref="StackDrop.NdpInvalid"/>; malformed options as <see cref="StackDrop.BadOptions"/>.</item>
/// </list>
/// The guest's MAC is not taken from its link-layer address options: the gateway answers the MAC
/// its frames come from, as it does for IPv4.
/// </remarks>
internal sealed class NdpHandler(Gateway gateway)
{
    /// <summary>NDP's hop limit, on every message sent and required on every one received (RFC 4861 6.1.1, 7.1.1).</summary>
    public const byte HopLimit = 255;

    /// <summary>Router lifetime advertised, seconds (slirp: 3 x MaxRtrAdvInterval).</summary>
    public const ushort RouterLifetime = 1800;

    /// <summary>Valid lifetime of the prefix, seconds.</summary>
    public const uint PrefixValidLifetime = 86_400;

    /// <summary>Preferred lifetime of the prefix, seconds.</summary>
    public const uint PrefixPreferredLifetime = 14_400;

    /// <summary>Lifetime of the advertised DNS server, seconds (RFC 8106 5.1: at least 3 x MaxRtrAdvInterval).</summary>
    public const uint DnsLifetime = 1800;

    /// <summary>The interval between unsolicited advertisements is drawn from [<see cref="MinIntervalMs"/>, <see cref="MaxIntervalMs"/>).</summary>
    public const long MinIntervalMs = 200_000;

    /// <summary>MaxRtrAdvInterval's default (RFC 4861 6.2.1).</summary>
    public const long MaxIntervalMs = 600_000;

    /// <summary>Fixed part, source link-layer address, MTU, prefix information and RDNSS.</summary>
    private const int AdvertisementLength = 16 + 8 + 8 + 32 + 24;

    /// <summary>Fixed part and target link-layer address.</summary>
    private const int NeighborAdvertisementLength = 24 + 8;

    private long _nextAdvertisementMs;

    /// <summary>A neighbour discovery message from the guest (checksum verified). Caller holds the gateway lock.</summary>
    public void OnMessage(IpAddr source, IpAddr destination, byte hopLimit, Icmpv6Packet icmp)
    {
        if (hopLimit != HopLimit || icmp.Code != 0)
        {
            gateway.Counters.Drop(StackDrop.NdpInvalid);
            return;
        }

        if (!NdpMessage.TryParse(icmp.Bytes, out var message))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var options = message.GetOptions();
        var hasSourceAddress = false;
        while (options.MoveNext())
        {
            hasSourceAddress |= options.Type == NdpOptionType.SourceLinkLayerAddress;
        }

        if (options.IsMalformed)
        {
            gateway.Counters.Drop(StackDrop.BadOptions);
            return;
        }

        switch (message.Type)
        {
            case Icmpv6Type.RouterSolicitation:
                // RFC 4861 6.1.1: no source link-layer address from ::.
                if (source.IsIpv6Unspecified && hasSourceAddress)
                {
                    gateway.Counters.Drop(StackDrop.NdpInvalid);
                    return;
                }

                SendRouterAdvertisement();
                return;

            case Icmpv6Type.NeighborSolicitation:
                OnSolicitation(source, destination, message.TargetAddress, hasSourceAddress);
                return;

            case Icmpv6Type.NeighborAdvertisement:
                var target = message.TargetAddress;
                if (target.IsIpv6Multicast || (destination.IsIpv6Multicast && message.SolicitedFlag))
                {
                    gateway.Counters.Drop(StackDrop.NdpInvalid);
                    return;
                }

                gateway.Counters.Drop(gateway.IsOwnIpv6(target) ? StackDrop.NdpSpoof : StackDrop.Ignored);
                return;

            default:
                // Router advertisements and redirects come from routers, and the gateway is the router.
                gateway.Counters.Drop(StackDrop.NdpSpoof);
                return;
        }
    }

    private void OnSolicitation(IpAddr source, IpAddr destination, IpAddr target, bool hasSourceAddress)
    {
        // RFC 4861 7.1.1: the target is not multicast; a probe from :: goes to the target's
        // solicited-node group and carries no source link-layer address.
        var probe = source.IsIpv6Unspecified;
        if (target.IsIpv6Multicast || (probe && (destination != target.SolicitedNodeMulticast || hasSourceAddress)))
        {
            gateway.Counters.Drop(StackDrop.NdpInvalid);
            return;
        }

        if (!gateway.IsOwnIpv6(target))
        {
            // RFC 4862 5.4.2: a probe is the guest's duplicate address detection of an address it
            // is about to use (its SLAAC address, say). Learning it here lets host forwards reach
            // the guest over IPv6 before it has sent anything from that address.
            if (probe && gateway.Options.Network6.Contains(target))
            {
                gateway.GuestIpv6.Learn(target);
            }

            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        // RFC 4861 7.2.4: to the soliciting address; to all nodes, unsolicited, for a probe
        // (then the guest's duplicate address detection finds the address taken, as it is).
        var to = probe ? IpAddr.Ipv6AllNodes : source;
        var frame = gateway.RentIp(to, NeighborAdvertisementLength);
        var icmp = frame.Span[Gateway.Ipv6PayloadOffset..];
        var flags = (byte)(NdpFlags.Router | NdpFlags.Override | (probe ? 0 : NdpFlags.Solicited));
        icmp[4] = flags;
        icmp[5..8].Clear();
        target.WriteIpv6To(icmp.Slice(8, 16));
        new NdpOptionWriter(icmp[24..]).WriteLinkLayerAddress(NdpOptionType.TargetLinkLayerAddress, Gateway.GatewayMac);
        WriteIcmpHeader(icmp, Icmpv6Type.NeighborAdvertisement, target, to);
        gateway.EmitIpv6(frame, IpProtocol.Icmpv6, target, to, HopLimit);
    }

    /// <summary>Sends a router advertisement to every node on the link. Caller holds the gateway lock.</summary>
    public void SendRouterAdvertisement()
    {
        var to = IpAddr.Ipv6AllNodes;
        var frame = gateway.RentIp(to, AdvertisementLength);
        var icmp = frame.Span[Gateway.Ipv6PayloadOffset..];
        icmp[4] = 64;
        icmp[5] = NdpFlags.OtherConfig;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], RouterLifetime);
        icmp[8..16].Clear();
        var options = new NdpOptionWriter(icmp[16..]);
        options.WriteLinkLayerAddress(NdpOptionType.SourceLinkLayerAddress, Gateway.GatewayMac);
        options.WriteMtu((uint)gateway.Options.Mtu);
        var prefix = gateway.Options.Network6;
        options.WritePrefixInformation(prefix.Network, (byte)prefix.PrefixLength, NdpFlags.OnLink | NdpFlags.Autonomous, PrefixValidLifetime, PrefixPreferredLifetime);
        options.WriteRecursiveDnsServer(DnsLifetime, gateway.DnsIp6);
        WriteIcmpHeader(icmp, Icmpv6Type.RouterAdvertisement, Gateway.GatewayLinkLocal, to);
        if (gateway.EmitIpv6(frame, IpProtocol.Icmpv6, Gateway.GatewayLinkLocal, to, HopLimit))
        {
            gateway.Counters.RouterAdvertisement();
        }

        _nextAdvertisementMs = gateway.NowMs + Random.Shared.NextInt64(MinIntervalMs, MaxIntervalMs);
    }

    /// <summary>The periodic unsolicited advertisement, once the guest speaks IPv6. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs)
    {
        if (gateway.GuestSpeaksIpv6 && nowMs >= _nextAdvertisementMs && gateway.CanEmit)
        {
            SendRouterAdvertisement();
        }
    }

    /// <summary>Writes type, code and checksum over a message whose bytes after the first four are in place.</summary>
    private static void WriteIcmpHeader(Span<byte> icmp, Icmpv6Type type, IpAddr source, IpAddr destination)
    {
        var restOfHeader = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(icmp[4..]);
        new Icmpv6Header(type, 0, restOfHeader).WriteTo(icmp, PseudoHeader.Create(source, destination, IpProtocol.Icmpv6));
    }
}
