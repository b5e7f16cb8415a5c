using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// The gateway's IPv6 side with no sockets: router advertisements, neighbour discovery, echo,
/// stateless DHCPv6, TCP refusals and the policy, each answer read back through the views.
/// </summary>
public sealed class GatewayIpv6Tests
{
    private readonly CollectingReceiver _receiver = new();
    private readonly FakeTimeProvider _time = new();
    private Gateway _gateway;

    public GatewayIpv6Tests()
    {
        _gateway = Create(new GatewayOptions());
    }

    private Gateway Create(GatewayOptions options) => GatewayTesting.Create(options, _time, _receiver);

    private void Send(byte[] frame) => _gateway.Send(frame);

    private byte[] Single() => _receiver.Single();

    private static byte[] Solicitation(IpAddr target, bool withSourceAddress = true)
    {
        var body = new byte[16 + (withSourceAddress ? 8 : 0)];
        target.WriteIpv6To(body);
        if (withSourceAddress)
        {
            new NdpOptionWriter(body.AsSpan(16)).WriteLinkLayerAddress(NdpOptionType.SourceLinkLayerAddress, GuestMac);
        }

        return body;
    }

    [Fact]
    public void RouterSolicitation_IsAnsweredWithSlirpsAdvertisement()
    {
        var rs = new byte[8];
        new NdpOptionWriter(rs).WriteLinkLayerAddress(NdpOptionType.SourceLinkLayerAddress, GuestMac);
        Send(BuildIcmpv6(GuestLinkLocal, A6("ff02::2"), Icmpv6Type.RouterSolicitation, 0, 0, rs, hopLimit: 255));

        var (source, destination, hopLimit, next, mac, payload) = ParseIpv6(Single());
        Assert.Equal((GatewayLinkLocal, IpAddr.Ipv6AllNodes, (byte)255, IpProtocol.Icmpv6), (source, destination, hopLimit, next));
        Assert.Equal("33:33:00:00:00:01", mac.ToString());
        Assert.True(NdpMessage.TryParse(payload, out var ra));
        Assert.Equal(Icmpv6Type.RouterAdvertisement, ra.Type);
        Assert.Equal(64, ra.CurrentHopLimit);
        Assert.False(ra.ManagedFlag);
        Assert.True(ra.OtherConfigFlag);
        Assert.Equal(1800, ra.RouterLifetime);
        Assert.Equal(0u, ra.ReachableTime);
        Assert.Equal(0u, ra.RetransTimer);

        var seen = new List<NdpOptionType>();
        var options = ra.GetOptions();
        while (options.MoveNext())
        {
            seen.Add(options.Type);
            var value = options.Value;
            switch (options.Type)
            {
                case NdpOptionType.SourceLinkLayerAddress:
                    Assert.True(options.TryGetLinkLayerAddress(out var router));
                    Assert.Equal(Gateway.GatewayMac, router);
                    break;
                case NdpOptionType.Mtu:
                    Assert.Equal(1500u, BinaryPrimitives.ReadUInt32BigEndian(value[2..]));
                    break;
                case NdpOptionType.PrefixInformation:
                    Assert.Equal(64, value[0]);
                    Assert.Equal(NdpFlags.OnLink | NdpFlags.Autonomous, value[1]);
                    Assert.Equal(86_400u, BinaryPrimitives.ReadUInt32BigEndian(value[2..]));
                    Assert.Equal(14_400u, BinaryPrimitives.ReadUInt32BigEndian(value[6..]));
                    Assert.Equal(A6("fd00::"), IpAddr.FromIpv6(value.Slice(14, 16)));
                    break;
                case NdpOptionType.RecursiveDnsServer:
                    Assert.Equal(1800u, BinaryPrimitives.ReadUInt32BigEndian(value[2..]));
                    Assert.Equal(DnsIp6, IpAddr.FromIpv6(value.Slice(6, 16)));
                    break;
            }
        }

        Assert.False(options.IsMalformed);
        Assert.Equal([NdpOptionType.SourceLinkLayerAddress, NdpOptionType.Mtu, NdpOptionType.PrefixInformation, NdpOptionType.RecursiveDnsServer], seen);
        Assert.Equal(1, _gateway.Counters.RouterAdvertisements);
    }

    [Fact]
    public void RouterAdvertisements_RepeatWithinTheMaximumInterval_OnceTheGuestSpeaksIpv6()
    {
        lock (_gateway.Sync)
        {
            _time.Advance(TimeSpan.FromMinutes(20));
            _gateway.OnTimer();
        }

        Assert.Empty(_receiver.Frames);
        Send(BuildIcmpv6(GuestLinkLocal, A6("ff02::2"), Icmpv6Type.RouterSolicitation, 0, 0, [], hopLimit: 255));
        _receiver.Frames.Clear();
        for (var minute = 0; minute < 30; minute++)
        {
            lock (_gateway.Sync)
            {
                _time.Advance(TimeSpan.FromMinutes(1));
                _gateway.OnTimer();
            }
        }

        // 30 minutes at one advertisement every 200 to 600 s: 3 to 9 of them.
        Assert.InRange(_receiver.Frames.Count, 3, 9);
    }

    [Theory]
    [InlineData("fd00::2")]
    [InlineData("fd00::3")]
    [InlineData("fe80::2")]
    public void NeighborSolicitation_ForAGatewayAddress_IsAnswered(string target)
    {
        var address = A6(target);
        Send(BuildIcmpv6(GuestIp6, address.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, Solicitation(address), hopLimit: 255));

        var (source, destination, hopLimit, _, mac, payload) = ParseIpv6(Single());
        Assert.Equal((address, GuestIp6, (byte)255), (source, destination, hopLimit));
        Assert.Equal(GuestMac, mac);
        Assert.True(NdpMessage.TryParse(payload, out var na));
        Assert.Equal(Icmpv6Type.NeighborAdvertisement, na.Type);
        Assert.Equal(address, na.TargetAddress);
        Assert.True(na.RouterFlag);
        Assert.True(na.SolicitedFlag);
        Assert.True(na.OverrideFlag);
        var options = na.GetOptions();
        Assert.True(options.MoveNext());
        Assert.Equal(NdpOptionType.TargetLinkLayerAddress, options.Type);
        Assert.True(options.TryGetLinkLayerAddress(out var answered));
        Assert.Equal(Gateway.GatewayMac, answered);
        Assert.False(options.MoveNext());
    }

    [Fact]
    public void DuplicateAddressDetection_OfTheGuestsOwnAddress_GetsNoAnswer_AndTeachesItsPrefixAddress()
    {
        Send(BuildIcmpv6(IpAddr.Ipv6Unspecified, GuestIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, Solicitation(GuestIp6, withSourceAddress: false), hopLimit: 255));
        Send(BuildIcmpv6(IpAddr.Ipv6Unspecified, GuestLinkLocal.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, Solicitation(GuestLinkLocal, withSourceAddress: false), hopLimit: 255));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(2, _gateway.Counters.Drops(StackDrop.Ignored));

        // The probed address of the prefix is the one host forwards reach the guest at, before it sent anything from it.
        Assert.Equal([GuestIp6.ToIPAddress()], _gateway.GuestIpv6.ToList());
    }

    [Fact]
    public void DuplicateAddressDetection_OfTheGatewaysAddress_IsDefendedToAllNodes()
    {
        Send(BuildIcmpv6(IpAddr.Ipv6Unspecified, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, Solicitation(GatewayIp6, withSourceAddress: false), hopLimit: 255));
        var (source, destination, _, _, mac, payload) = ParseIpv6(Single());
        Assert.Equal((GatewayIp6, IpAddr.Ipv6AllNodes), (source, destination));
        Assert.Equal(MacAddress.Ipv6Multicast(IpAddr.Ipv6AllNodes), mac);
        Assert.True(NdpMessage.TryParse(payload, out var na));
        Assert.False(na.SolicitedFlag);
        Assert.Equal(GatewayIp6, na.TargetAddress);
    }

    [Theory]
    [InlineData("fd00::2")]
    [InlineData("fd00::3")]
    [InlineData("fe80::2")]
    public void EchoToAGatewayAddress_IsAnswered(string address)
    {
        var to = A6(address);
        var from = to.IsIpv6LinkLocal ? GuestLinkLocal : GuestIp6;
        Send(BuildIcmpv6(from, to, Icmpv6Type.EchoRequest, 0, 0x1234_0007, "ping over ipv6"u8));
        var (source, destination, hopLimit, next, _, payload) = ParseIpv6(Single());
        Assert.Equal((to, from, IpProtocol.Icmpv6), (source, destination, next));
        Assert.Equal(64, hopLimit);
        Assert.True(Icmpv6Packet.TryParse(payload, out var reply));
        Assert.Equal(Icmpv6Type.EchoReply, reply.Type);
        Assert.Equal((0x1234, 7), (reply.Identifier, reply.SequenceNumber));
        Assert.Equal("ping over ipv6"u8.ToArray(), reply.Data.ToArray());
    }

    [Fact]
    public void EchoFromALinkLocalSource_ToTheOutside_IsNotRelayed()
    {
        Send(BuildIcmpv6(GuestLinkLocal, A6("2001:db8::1"), Icmpv6Type.EchoRequest, 0, 0x1234_0001, []));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadAddress));
    }

    [Fact]
    public void InformationRequest_IsAnsweredWithTheDnsAddress()
    {
        byte[] clientId = [0, 3, 0, 1, 2, 0, 0, 0, 0, 0x15];
        var request = new byte[Dhcpv6Packet.HeaderLength + 4 + clientId.Length + 6];
        request[0] = (byte)Dhcpv6MessageType.InformationRequest;
        request[1] = 0x12;
        request[2] = 0x34;
        request[3] = 0x56;
        var writer = new Dhcpv6OptionWriter(request.AsSpan(Dhcpv6Packet.HeaderLength));
        writer.Write(Dhcpv6OptionCode.ClientId, clientId);
        writer.Write(Dhcpv6OptionCode.OptionRequest, [0, 23]);
        Send(BuildUdp6(GuestLinkLocal, Dhcpv6Packet.ClientPort, A6("ff02::1:2"), Dhcpv6Packet.ServerPort, request));

        var (source, destination, _, next, _, payload) = ParseIpv6(Single());
        Assert.Equal((GatewayLinkLocal, GuestLinkLocal, IpProtocol.Udp), (source, destination, next));
        Assert.True(UdpPacket.TryParse(payload, out var udp));
        Assert.Equal((Dhcpv6Packet.ServerPort, Dhcpv6Packet.ClientPort), (udp.SourcePort, udp.DestinationPort));
        Assert.True(Dhcpv6Packet.TryParse(udp.Payload, out var reply));
        Assert.Equal(Dhcpv6MessageType.Reply, reply.MessageType);
        Assert.Equal(0x123456u, reply.TransactionId);
        var options = new Dictionary<Dhcpv6OptionCode, byte[]>();
        var reader = reply.GetOptions();
        while (reader.MoveNext())
        {
            options.Add(reader.Code, reader.Value.ToArray());
        }

        Assert.False(reader.IsMalformed);
        Assert.Equal(clientId, options[Dhcpv6OptionCode.ClientId]);
        Assert.Equal([0, 3, 0, 1, 0x52, 0x55, 0x0a, 0, 2, 2], options[Dhcpv6OptionCode.ServerId]);
        Assert.Equal(DnsIp6, IpAddr.FromIpv6(options[Dhcpv6OptionCode.DnsServers]));
        Assert.Equal(1, _gateway.Counters.Dhcpv6Replies);

        // Stateful DHCPv6 is not served.
        request[0] = (byte)Dhcpv6MessageType.Solicit;
        Send(BuildUdp6(GuestLinkLocal, Dhcpv6Packet.ClientPort, A6("ff02::1:2"), Dhcpv6Packet.ServerPort, request));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.Ignored));
    }

    [Fact]
    public void SynToTheIpv6GatewayWithoutPermission_IsRefusedWithReset()
    {
        Send(BuildTcp6(GuestIp6, 40000, GatewayIp6, 22, 1000, 0, TcpFlags.Syn, 65535, []));
        var (source, destination, _, next, mac, payload) = ParseIpv6(Single());
        Assert.Equal((GatewayIp6, GuestIp6, IpProtocol.Tcp), (source, destination, next));
        Assert.Equal(GuestMac, mac);
        Assert.True(TcpHeader.TryParse(payload, out var tcp));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, tcp.Flags);
        Assert.Equal(1001u, tcp.AckNumber);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.Denied));
        Assert.Equal([IPAddress.Parse("fd00::ff:fe00:15")], _gateway.GuestIpv6.ToList());
    }

    [Fact]
    public void SegmentForUnknownIpv6Flow_IsAnsweredWithReset()
    {
        Send(BuildTcp6(GuestIp6, 40000, A6("2001:db8::80"), 80, 1000, 5000, TcpFlags.Ack, 65535, [1, 2, 3]));
        var (source, _, _, _, _, payload) = ParseIpv6(Single());
        Assert.Equal(A6("2001:db8::80"), source);
        Assert.True(TcpHeader.TryParse(payload, out var tcp));
        Assert.Equal(TcpFlags.Rst, tcp.Flags);
        Assert.Equal(5000u, tcp.SequenceNumber);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.UnknownFlow));
    }

    [Theory]
    [InlineData("fd00::7", StackDrop.BadAddress)] // the rest of the guest's prefix
    [InlineData("fe80::1", StackDrop.BadAddress)]
    [InlineData("::1", StackDrop.BadAddress)]
    [InlineData("ff05::2", StackDrop.BadAddress)]
    [InlineData("2001:db8:1::1", StackDrop.Denied)] // --deny 2001:db8::/32
    [InlineData("2001:dba::1", StackDrop.Denied)] // outside every --allow network of its family
    public void SynToAnAddressThatIsNotRouted_IsRefused(string address, StackDrop reason)
    {
        _gateway = Create(new GatewayOptions
        {
            Policy = new Nat.OutboundPolicy([IpNetwork.Parse("2001:db8::/31"), IpNetwork.Parse("10.0.0.0/8")], [IpNetwork.Parse("2001:db8::/32")]),
        });
        Send(BuildTcp6(GuestIp6, 40000, A6(address), 80, 1000, 0, TcpFlags.Syn, 65535, []));
        Assert.Equal(1, _gateway.Counters.Drops(reason));
        Assert.Equal(0, _gateway.Tcp.Count);
    }

    [Fact]
    public void WithIpv6Off_FramesAreDroppedAndNothingIsAdvertised()
    {
        _gateway = Create(new GatewayOptions { Ipv6Enabled = false });
        Send(BuildIcmpv6(GuestLinkLocal, A6("ff02::2"), Icmpv6Type.RouterSolicitation, 0, 0, [], hopLimit: 255));
        lock (_gateway.Sync)
        {
            _time.Advance(TimeSpan.FromHours(1));
            _gateway.OnTimer();
        }

        Assert.Empty(_receiver.Frames);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.UnsupportedEtherType));
    }

    [Fact]
    public async Task DnsQueriesToEitherDnsAddress_ReachAnIpv6Resolver_AndAnswersComeBack()
    {
        using var resolver = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        var resolverEndPoint = (IPEndPoint)resolver.Client.LocalEndPoint!;
        _gateway = Create(new GatewayOptions { DnsUpstream = resolverEndPoint });
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        _gateway.Attach(_receiver, new WireCounters(), stop.Token);
        try
        {
            Send(BuildUdp6(GuestIp6, 5300, DnsIp6, 53, "query six"u8));
            Send(BuildUdp(GuestIp, 5301, 0x0A000203, 53, "query four"u8));
            for (var i = 0; i < 2; i++)
            {
                var query = await resolver.ReceiveAsync(stop.Token);
                Assert.Equal(AddressFamily.InterNetworkV6, query.RemoteEndPoint.AddressFamily);
                byte[] answer = [.. "answer to "u8, .. query.Buffer];
                await resolver.SendAsync(answer.AsMemory(), query.RemoteEndPoint, stop.Token);
            }

            while (_receiver.Frames.Count < 2)
            {
                await Task.Delay(10, stop.Token);
            }

            var answers = new Dictionary<string, string>();
            foreach (var frame in _receiver.Frames)
            {
                Assert.True(EthernetFrame.TryParse(frame, out var ethernet));
                byte[] udpBytes;
                if (ethernet.EtherType == EtherType.Ipv6)
                {
                    var (source, destination, _, _, _, payload) = ParseIpv6(frame);
                    Assert.Equal((DnsIp6, GuestIp6), (source, destination));
                    udpBytes = payload;
                }
                else
                {
                    var (source, destination, _, payload) = ParseIpv4(frame);
                    Assert.Equal((0x0A000203u, GuestIp), (source, destination));
                    udpBytes = payload;
                }

                Assert.True(UdpPacket.TryParse(udpBytes, out var udp));
                Assert.Equal(53, udp.SourcePort);
                answers[ethernet.EtherType.ToString()] = System.Text.Encoding.ASCII.GetString(udp.Payload);
            }

            Assert.Equal("answer to query six", answers["Ipv6"]);
            Assert.Equal("answer to query four", answers["Ipv4"]);
        }
        finally
        {
            await stop.CancelAsync();
            lock (_gateway.Sync)
            {
                _gateway.Shutdown();
            }
        }
    }

    [Fact]
    public void DnsDisabled_QueriesToEitherDnsAddress_AreDroppedAsNoDnsServer_AndOpenNoFlow()
    {
        // slirp4netns's --disable-dns: the resolver is configured and would answer (the test
        // above), but no query may reach it.
        using var resolver = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        _gateway = Create(new GatewayOptions { DnsUpstream = (IPEndPoint)resolver.Client.LocalEndPoint!, DnsDisabled = true });

        Send(BuildUdp6(GuestIp6, 5300, DnsIp6, 53, "query six"u8));
        Send(BuildUdp(GuestIp, 5301, 0x0A000203, 53, "query four"u8));

        Assert.Equal(2, _gateway.Counters.Drops(StackDrop.NoDnsServer));
        Assert.Equal(0, _gateway.Udp.Count);
        Assert.Empty(_receiver.Frames);
        Assert.Equal(0, resolver.Available);
    }

    [Fact]
    public void UdpToAClosedHostPort_GetsAPortUnreachableOfItsFamily()
    {
        using var closed = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
        closed.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        var port6 = (ushort)((IPEndPoint)closed.LocalEndPoint!).Port;
        using var closed4 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        closed4.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port4 = (ushort)((IPEndPoint)closed4.LocalEndPoint!).Port;
        closed.Close();
        closed4.Close();

        _gateway = Create(new GatewayOptions { AllowHostLoopback = true });
        using var stop = new CancellationTokenSource();
        _gateway.Attach(_receiver, new WireCounters(), stop.Token);
        Send(BuildUdp6(GuestIp6, 5353, GatewayIp6, port6, "anyone there?"u8));
        Send(BuildUdp(GuestIp, 5353, GatewayIp, port4, "anyone there?"u8));

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (_receiver.Frames.Count < 2 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(10);
        }

        Assert.Equal(2, _receiver.Frames.Count);
        foreach (var frame in _receiver.Frames)
        {
            Assert.True(EthernetFrame.TryParse(frame, out var ethernet));
            if (ethernet.EtherType == EtherType.Ipv6)
            {
                var (source, destination, _, next, _, payload) = ParseIpv6(frame);
                Assert.Equal((GatewayIp6, GuestIp6, IpProtocol.Icmpv6), (source, destination, next));
                Assert.True(Icmpv6Packet.TryParse(payload, out var error));
                Assert.Equal((Icmpv6Type.DestinationUnreachable, (byte)4), (error.Type, error.Code));
                Assert.True(error.TryGetQuotedPacket(out var quoted));
                Assert.Equal((GuestIp6, GatewayIp6, IpProtocol.Udp), (quoted.Source, quoted.Destination, quoted.NextHeader));
                Assert.True(UdpPacket.TryParse(quoted.Payload, out var udp));
                Assert.Equal((5353, port6), (udp.SourcePort, udp.DestinationPort));
            }
            else
            {
                var (source, destination, protocol, payload) = ParseIpv4(frame);
                Assert.Equal((GatewayIp, GuestIp, (byte)IpProtocol.Icmp), (source, destination, protocol));
                Assert.True(IcmpPacket.TryParse(payload, out var error));
                Assert.True(error.IsChecksumValid);
                Assert.Equal((IcmpType.DestinationUnreachable, (byte)3), (error.Type, error.Code));
                Assert.True(error.TryGetQuotedPacket(out var quoted));
                Assert.Equal((GuestIp, GatewayIp), (quoted.Source, quoted.Destination));
                Assert.True(UdpPacket.TryParse(quoted.Payload, out var udp));
                Assert.Equal((5353, port4), (udp.SourcePort, udp.DestinationPort));
            }
        }

        stop.Cancel();
        lock (_gateway.Sync)
        {
            _gateway.Shutdown();
        }
    }
}
