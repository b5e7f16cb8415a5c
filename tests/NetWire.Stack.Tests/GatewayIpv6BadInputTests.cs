using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// Hostile and broken IPv6 from the guest (docs/gateway.md, "Drop reasons"): each packet is dropped
/// and counted by its reason, nothing is answered, nothing throws, and no state is left behind.
/// </summary>
public sealed class GatewayIpv6BadInputTests
{
    private readonly CollectingReceiver _receiver = new();
    private readonly Gateway _gateway;

    public GatewayIpv6BadInputTests()
    {
        // SYNs that get through the IPv6 layer are refused by the policy (and answered with RST),
        // so none opens a host connection.
        var options = new GatewayOptions { Policy = new Nat.OutboundPolicy([], [IpNetwork.Parse("2001:db8::/32")]) };
        _gateway = GatewayTesting.Create(options, new FakeTimeProvider(), _receiver);
    }

    private void Send(byte[] frame) => _gateway.Send(frame);

    /// <summary>
    /// Sends <paramref name="frame"/> and checks that it was dropped for <paramref name="reason"/>
    /// alone, unanswered (a SYN refused as <see cref="StackDrop.Denied"/> gets its RST).
    /// </summary>
    private void AssertDropped(byte[] frame, StackDrop reason)
    {
        var before = Enum.GetValues<StackDrop>().ToDictionary(r => r, _gateway.Counters.Drops);
        Send(frame);
        foreach (var (other, count) in before)
        {
            Assert.True(_gateway.Counters.Drops(other) == count + (other == reason ? 1 : 0), $"{StackCounters.Name(other)}: {count} -> {_gateway.Counters.Drops(other)}");
        }

        if (reason == StackDrop.Denied)
        {
            Assert.True(_receiver.Frames.TryDequeue(out var reset));
            Assert.True(TcpHeader.TryParse(ParseIpv6(reset).Payload, out var tcp));
            Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, tcp.Flags);
        }

        Assert.Empty(_receiver.Frames);
        Assert.Equal(0, _gateway.Tcp.Count);
    }

    /// <summary>A SYN to 2001:db8::80 behind <paramref name="headers"/>, whose first Next Header is <paramref name="first"/>.</summary>
    private static byte[] SynBehind(IpProtocol first, params byte[][] headers)
    {
        var syn = new byte[TcpPacket.MinHeaderLength];
        var to = A6("2001:db8::80");
        new TcpHeader(40000, 80, 1, 0, TcpFlags.Syn, 65535).WriteTo(syn, PseudoHeader.Create(GuestIp6, to, IpProtocol.Tcp));
        byte[] payload = [.. headers.SelectMany(h => h), .. syn];
        return BuildIpv6(GuestIp6, to, first, payload);
    }

    private static byte[] Header(IpProtocol next, int units = 0, params byte[] body)
    {
        var header = new byte[(units + 1) * 8];
        header[0] = (byte)next;
        header[1] = (byte)units;
        body.CopyTo(header, 2);
        return header;
    }

    [Fact]
    public void PayloadLengthPastTheFrame_IsBadLength()
    {
        var frame = BuildUdp6(GuestIp6, 1000, A6("2001:db8::53"), 53, new byte[12]);
        frame[EthernetFrame.HeaderLength + 5] += 1;
        AssertDropped(frame, StackDrop.BadLength);
    }

    [Fact]
    public void ExtensionHeaderPastThePayload_IsBadLength() =>
        AssertDropped(BuildIpv6(GuestIp6, A6("2001:db8::80"), IpProtocol.Ipv6DestinationOptions, Header(IpProtocol.Tcp, 3).AsSpan(0, 16)), StackDrop.BadLength);

    [Fact]
    public void Jumbogram_IsDropped()
    {
        // Payload length 0 and a hop-by-hop header (RFC 2675), and a jumbo option in an ordinary packet.
        var frame = SynBehind(IpProtocol.Ipv6HopByHop, Header(IpProtocol.Tcp, 0, Ipv6OptionReader.JumboPayload, 4, 0, 1, 0, 0));
        frame[EthernetFrame.HeaderLength + 4] = 0;
        frame[EthernetFrame.HeaderLength + 5] = 0;
        AssertDropped(frame, StackDrop.Jumbogram);
        AssertDropped(SynBehind(IpProtocol.Ipv6HopByHop, Header(IpProtocol.Tcp, 0, Ipv6OptionReader.JumboPayload, 4, 0, 1, 0, 0)), StackDrop.Jumbogram);
    }

    [Fact]
    public void LongChains_RepeatsAndMisplacedHopByHop_AreExtensionHeaderDrops()
    {
        var many = Enumerable.Range(0, 200).Select(i => Header(i == 199 ? IpProtocol.Tcp : IpProtocol.Ipv6DestinationOptions)).ToArray();
        AssertDropped(SynBehind(IpProtocol.Ipv6DestinationOptions, many), StackDrop.ExtensionHeader);

        // A hop-by-hop header after another header, as a chain that "loops" back to it.
        AssertDropped(SynBehind(IpProtocol.Ipv6DestinationOptions, Header(IpProtocol.Ipv6HopByHop), Header(IpProtocol.Tcp)), StackDrop.ExtensionHeader);
        AssertDropped(SynBehind(IpProtocol.Ipv6HopByHop, Header(IpProtocol.Ipv6HopByHop), Header(IpProtocol.Tcp)), StackDrop.ExtensionHeader);
        byte[] routing = [(byte)IpProtocol.Ipv6Routing, 0, 2, 0, 0, 0, 0, 0];
        byte[] lastRouting = [(byte)IpProtocol.Tcp, 0, 2, 0, 0, 0, 0, 0];
        AssertDropped(SynBehind(IpProtocol.Ipv6Routing, routing, lastRouting), StackDrop.ExtensionHeader);
    }

    [Fact]
    public void AcceptableChain_ReachesTheUpperLayer()
    {
        // Hop-by-hop with router alert, destination options twice, routing type 2 with no segments left.
        byte[] routing = [(byte)IpProtocol.Ipv6DestinationOptions, 0, 2, 0, 0, 0, 0, 0];
        var frame = SynBehind(
            IpProtocol.Ipv6HopByHop,
            Header(IpProtocol.Ipv6DestinationOptions, 0, Ipv6OptionReader.RouterAlert, 2, 0, 0),
            Header(IpProtocol.Ipv6Routing),
            routing,
            Header(IpProtocol.Tcp));
        AssertDropped(frame, StackDrop.Denied);
    }

    [Fact]
    public void UnknownNextHeader_IsUnsupportedProtocol()
    {
        AssertDropped(BuildIpv6(GuestIp6, A6("2001:db8::1"), (IpProtocol)253, new byte[16]), StackDrop.UnsupportedProtocol);
        AssertDropped(SynBehind(IpProtocol.Ipv6DestinationOptions, Header((IpProtocol)50)), StackDrop.UnsupportedProtocol);
        AssertDropped(BuildIpv6(GuestIp6, A6("2001:db8::1"), IpProtocol.Ipv6NoNextHeader, []), StackDrop.Ignored);
    }

    [Fact]
    public void RoutingHeaders_OfType0OrWithSegmentsLeft_AreDropped()
    {
        AssertDropped(SynBehind(IpProtocol.Ipv6Routing, Header(IpProtocol.Tcp, 2, 0, 0)), StackDrop.RoutingHeader);
        AssertDropped(SynBehind(IpProtocol.Ipv6Routing, Header(IpProtocol.Tcp, 2, 0, 1)), StackDrop.RoutingHeader);
        AssertDropped(SynBehind(IpProtocol.Ipv6Routing, Header(IpProtocol.Tcp, 2, 4, 2)), StackDrop.RoutingHeader);
    }

    [Fact]
    public void Fragments_AreNotReassembled()
    {
        byte[] first = [(byte)IpProtocol.Tcp, 0, 0, 1, 0, 0, 0, 42];
        byte[] atomic = [(byte)IpProtocol.Tcp, 0, 0, 0, 0, 0, 0, 43];
        AssertDropped(SynBehind(IpProtocol.Ipv6Fragment, first), StackDrop.Fragment);
        AssertDropped(SynBehind(IpProtocol.Ipv6Fragment, atomic), StackDrop.Fragment);
    }

    [Fact]
    public void UnknownOptionsWithADiscardAction_AreBadOptions()
    {
        AssertDropped(SynBehind(IpProtocol.Ipv6DestinationOptions, Header(IpProtocol.Tcp, 0, 0x80, 4, 0, 0, 0, 0)), StackDrop.BadOptions);
        AssertDropped(SynBehind(IpProtocol.Ipv6HopByHop, Header(IpProtocol.Tcp, 0, 0x1e, 9)), StackDrop.BadOptions);

        // 00 in the high bits: skipped.
        AssertDropped(SynBehind(IpProtocol.Ipv6DestinationOptions, Header(IpProtocol.Tcp, 0, 0x1e, 4, 0, 0, 0, 0)), StackDrop.Denied);
    }

    [Fact]
    public void SpoofedAndImpossibleSources_AreBadAddress()
    {
        AssertDropped(BuildUdp6(GatewayIp6, 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        AssertDropped(BuildUdp6(GatewayLinkLocal, 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        AssertDropped(BuildUdp6(A6("ff02::1"), 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        AssertDropped(BuildUdp6(A6("::ffff:10.0.2.15"), 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        AssertDropped(BuildUdp6(A6("2001:db8::15"), 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        AssertDropped(BuildTcp6(GuestLinkLocal, 40000, A6("2001:db8::80"), 80, 1, 0, TcpFlags.Syn, 65535, []), StackDrop.BadAddress);
        AssertDropped(BuildUdp6(IpAddr.Ipv6Unspecified, 1000, A6("2001:db8::53"), 53, [1]), StackDrop.BadAddress);
        Assert.Empty(_gateway.GuestIpv6.ToList());
        AssertDropped(BuildUdp6(GuestIp6, 1000, A6("ff0e::1"), 53, [1]), StackDrop.BadAddress);
    }

    [Fact]
    public void HopLimitZero_IsTtlExpired() =>
        AssertDropped(BuildIcmpv6(GuestIp6, GatewayIp6, Icmpv6Type.EchoRequest, 0, 1, [], hopLimit: 0), StackDrop.TtlExpired);

    [Fact]
    public void ChecksumsThatDoNotVerify_AreBadChecksum()
    {
        var echo = BuildIcmpv6(GuestIp6, GatewayIp6, Icmpv6Type.EchoRequest, 0, 1, [1, 2, 3]);
        echo[^1] ^= 0xff;
        AssertDropped(echo, StackDrop.BadChecksum);
        var udp = BuildUdp6(GuestIp6, 1000, A6("2001:db8::53"), 53, [1, 2, 3]);
        udp[Gateway.Ipv6PayloadOffset + 6] = 0;
        udp[Gateway.Ipv6PayloadOffset + 7] = 0;
        AssertDropped(udp, StackDrop.BadChecksum);
    }

    [Fact]
    public void NeighborDiscoveryFromTheGuest_ClaimingToRouteOrOwnOurAddresses_IsSpoof()
    {
        var ra = new byte[8];
        ra[0] = 64;
        BinaryWrite(ra, 2, 1800);
        AssertDropped(BuildIcmpv6(GuestLinkLocal, IpAddr.Ipv6AllNodes, Icmpv6Type.RouterAdvertisement, 0, 0x4000_0708, ra, hopLimit: 255), StackDrop.NdpSpoof);

        foreach (var ours in new[] { GatewayIp6, DnsIp6, GatewayLinkLocal })
        {
            var na = new byte[16];
            ours.WriteIpv6To(na);
            AssertDropped(BuildIcmpv6(GuestLinkLocal, IpAddr.Ipv6AllNodes, Icmpv6Type.NeighborAdvertisement, 0, 0x2000_0000, na, hopLimit: 255), StackDrop.NdpSpoof);
        }

        var redirect = new byte[32];
        AssertDropped(BuildIcmpv6(GuestLinkLocal, GatewayLinkLocal, Icmpv6Type.Redirect, 0, 0, redirect, hopLimit: 255), StackDrop.NdpSpoof);
    }

    [Fact]
    public void NeighborDiscoveryThatFailsRfc4861sChecks_IsInvalid()
    {
        var ns = new byte[16];
        GatewayIp6.WriteIpv6To(ns);

        // Hop limit 64: from off the link.
        AssertDropped(BuildIcmpv6(GuestIp6, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, ns, hopLimit: 64), StackDrop.NdpInvalid);

        // Code 1.
        AssertDropped(BuildIcmpv6(GuestIp6, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 1, 0, ns, hopLimit: 255), StackDrop.NdpInvalid);

        // A probe from :: to the wrong group.
        AssertDropped(BuildIcmpv6(IpAddr.Ipv6Unspecified, IpAddr.Ipv6AllNodes, Icmpv6Type.NeighborSolicitation, 0, 0, ns, hopLimit: 255), StackDrop.NdpInvalid);

        // A multicast target.
        var multicast = new byte[16];
        IpAddr.Ipv6AllNodes.WriteIpv6To(multicast);
        AssertDropped(BuildIcmpv6(GuestIp6, IpAddr.Ipv6AllNodes, Icmpv6Type.NeighborSolicitation, 0, 0, multicast, hopLimit: 255), StackDrop.NdpInvalid);

        // An option of length 0, and a message shorter than its fixed part.
        byte[] badOption = [.. ns, 1, 0, 0, 0, 0, 0, 0, 0];
        AssertDropped(BuildIcmpv6(GuestIp6, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, badOption, hopLimit: 255), StackDrop.BadOptions);
        AssertDropped(BuildIcmpv6(GuestIp6, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, ns.AsSpan(0, 8), hopLimit: 255), StackDrop.BadLength);
    }

    [Fact]
    public void IcmpErrorsQuotingNonsense_AreCountedApart()
    {
        AssertDropped(BuildIcmpv6(GuestIp6, A6("2001:db8::1"), Icmpv6Type.DestinationUnreachable, 4, 0, new byte[30]), StackDrop.BadIcmpError);
        AssertDropped(BuildIcmpv6(GuestIp6, A6("2001:db8::1"), Icmpv6Type.PacketTooBig, 0, 1280, [0x60, 0, 0]), StackDrop.BadIcmpError);

        // A well-formed quote of a packet the gateway sent: ignored (not relayed).
        var quoted = BuildUdp6(A6("2001:db8::1"), 53, GuestIp6, 1000, [1, 2, 3])[EthernetFrame.HeaderLength..];
        AssertDropped(BuildIcmpv6(GuestIp6, A6("2001:db8::1"), Icmpv6Type.DestinationUnreachable, 4, 0, quoted), StackDrop.Ignored);
    }

    [Fact]
    public void RandomIpv6Frames_NeverThrowAndLeaveNoState()
    {
        var random = new Random(1706);
        for (var i = 0; i < 5000; i++)
        {
            var payload = new byte[random.Next(0, 300)];
            random.NextBytes(payload);
            var next = (IpProtocol)((i % 6) switch { 0 => 0, 1 => 43, 2 => 44, 3 => 60, 4 => 58, _ => random.Next(256) });
            var frame = BuildIpv6(i % 3 == 0 ? GuestLinkLocal : GuestIp6, i % 2 == 0 ? GatewayIp6 : A6("ff02::2"), next, payload, hopLimit: (byte)(i % 4 == 0 ? 255 : random.Next(256)));
            if (i % 7 == 0)
            {
                frame[EthernetFrame.HeaderLength + 4] = (byte)random.Next(256);
                frame[EthernetFrame.HeaderLength + 5] = (byte)random.Next(256);
            }

            Send(frame);
            _receiver.Frames.Clear();
        }

        Assert.Equal(0, _gateway.Tcp.Count);
        Assert.Equal(0, _gateway.Udp.Count);
    }

    private static void BinaryWrite(byte[] bytes, int offset, ushort value) =>
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset), value);
}
