using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>ARP, DHCP, ICMP echo and bad input against the stack, with no sockets.</summary>
public sealed class GatewayProtocolTests
{
    private readonly CollectingReceiver _receiver = new();
    private readonly Gateway _gateway;

    public GatewayProtocolTests()
    {
        _gateway = GatewayTesting.Create(new GatewayOptions(), new FakeTimeProvider(), _receiver);
    }

    private void Send(byte[] frame) => _gateway.Send(frame);

    private byte[] Single() => _receiver.Single();

    [Fact]
    public void ArpRequestForGateway_GetsReplyWithGatewayMac()
    {
        var frame = new byte[EthernetFrame.HeaderLength + ArpPacket.Length];
        new EthernetHeader(MacAddress.Broadcast, GuestMac, EtherType.Arp).WriteTo(frame);
        new ArpHeader(ArpOperation.Request, GuestMac, 0x0A000264, default, GatewayIp).WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        Send(frame);

        var reply = Single();
        Assert.True(EthernetHeader.TryParse(reply, out var ethernet));
        Assert.Equal(new EthernetHeader(GuestMac, Gateway.GatewayMac, EtherType.Arp), ethernet);
        Assert.True(ArpHeader.TryParse(reply.AsSpan(EthernetFrame.HeaderLength), out var arp));
        Assert.Equal(new ArpHeader(ArpOperation.Reply, Gateway.GatewayMac, GatewayIp, GuestMac, 0x0A000264), arp);
        Assert.Equal(0x0A000264u, _gateway.GuestIp);
    }

    [Fact]
    public void DhcpDiscoverThenRequest_OffersAndAcksFirstPoolAddress()
    {
        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(DhcpMessageType.Discover, 0), dstMac: MacAddress.Broadcast));
        var offer = Dhcp(Single());
        Assert.Equal(0x0A00020Fu, offer.Header.YourAddress);
        Assert.Equal((byte)DhcpMessageType.Offer, offer.Options[DhcpOptionCode.MessageType][0]);
        Assert.Equal(GatewayIp, Core.Net.Ip.Read(offer.Options[DhcpOptionCode.Router]));
        Assert.Equal(0x0A000203u, Core.Net.Ip.Read(offer.Options[DhcpOptionCode.DomainNameServer]));
        Assert.Equal(new byte[] { 0x05, 0xdc }, offer.Options[DhcpOptionCode.InterfaceMtu]);

        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(DhcpMessageType.Request, 0x0A00020F), dstMac: MacAddress.Broadcast));
        var ack = Dhcp(Single());
        Assert.Equal((byte)DhcpMessageType.Ack, ack.Options[DhcpOptionCode.MessageType][0]);
        Assert.Equal(0x0A00020Fu, _gateway.GuestIp);

        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(DhcpMessageType.Request, 0x0A000263), dstMac: MacAddress.Broadcast));
        Assert.Equal((byte)DhcpMessageType.Nak, Dhcp(Single()).Options[DhcpOptionCode.MessageType][0]);
    }

    [Fact]
    public void EchoToGateway_IsAnswered()
    {
        var icmp = new byte[16];
        IcmpHeader.Echo(IcmpType.EchoRequest, 0x1234, 0).WriteTo(icmp);
        Send(BuildIpv4(GuestIp, GatewayIp, 1, icmp));
        var (source, destination, protocol, payload) = ParseIpv4(Single());
        Assert.Equal((GatewayIp, GuestIp, (byte)1), (source, destination, protocol));
        Assert.True(IcmpPacket.TryParse(payload, out var reply));
        Assert.Equal(IcmpType.EchoReply, reply.Type);
        Assert.Equal(0x1234, reply.Identifier);
        Assert.True(reply.IsChecksumValid);
    }

    [Fact]
    public void BadInput_IsDroppedAndCountedByReason()
    {
        var good = BuildTcp(GuestIp, 40000, GatewayIp, 80, 1, 0, TcpFlags.Syn, 65535, []);
        var badChecksum = (byte[])good.Clone();
        badChecksum[^1] ^= 0xff;
        badChecksum[^3] ^= 0x55;
        Send(badChecksum);
        Send(BuildIpv4(GuestIp, GatewayIp, 6, new byte[20], moreFragments: true));
        Send(BuildIpv4(GuestIp, GatewayIp, 6, new byte[20], ttl: 0));
        Send(good[..30]);
        Send(BuildIpv4(GuestIp, GatewayIp, 47, new byte[8]));
        var badOffset = BuildTcp(GuestIp, 40000, GatewayIp, 80, 1, 0, TcpFlags.Syn, 65535, []);
        badOffset[Gateway.Ipv4PayloadOffset + 12] = 0xf0; // data offset 15: 60 bytes, past the segment
        Send(badOffset);
        var random = new Random(7);
        for (var i = 0; i < 2000; i++)
        {
            var junk = new byte[random.Next(0, 200)];
            random.NextBytes(junk);
            Send(junk);
        }

        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.Fragment));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.TtlExpired));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.UnsupportedProtocol));
        Assert.True(_gateway.Counters.Drops(StackDrop.BadChecksum) >= 1);
        Assert.True(_gateway.Counters.Drops(StackDrop.BadLength) >= 2);
        Assert.Equal(0, _gateway.Tcp.Count);
    }

    [Fact]
    public void SegmentForUnknownFlow_IsAnsweredWithReset()
    {
        Send(BuildTcp(GuestIp, 40000, 0x08080808, 80, 1000, 5000, TcpFlags.Ack, 65535, [1, 2, 3]));
        var (tcp, _) = ParseTcp(Single());
        Assert.Equal(TcpFlags.Rst, tcp.Flags);
        Assert.Equal(5000u, tcp.SequenceNumber);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.UnknownFlow));
    }

    [Fact]
    public void SynToHostLoopbackWithoutPermission_IsRefusedWithReset()
    {
        Send(BuildTcp(GuestIp, 40000, GatewayIp, 22, 1000, 0, TcpFlags.Syn, 65535, []));
        var (tcp, _) = ParseTcp(Single());
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, tcp.Flags);
        Assert.Equal(1001u, tcp.AckNumber);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.Denied));
    }

    internal static byte[] Bootp(DhcpMessageType type, uint requested)
    {
        var bootp = new byte[DhcpPacket.OptionsOffset + 3 + 6 + 1];
        new DhcpHeader(DhcpPacket.BootRequest, 0xdeadbeef, GuestMac).WriteTo(bootp);
        var options = new DhcpOptionWriter(bootp.AsSpan(DhcpPacket.OptionsOffset));
        options.Write(DhcpOptionCode.MessageType, (byte)type);
        if (requested != 0)
        {
            options.Write(DhcpOptionCode.RequestedAddress, requested);
        }

        options.WriteEnd();
        return bootp;
    }

    /// <summary>The DHCP reply in a frame from the gateway: its fixed part and its options by code.</summary>
    internal static (DhcpHeader Header, Dictionary<DhcpOptionCode, byte[]> Options) Dhcp(byte[] frame)
    {
        var (_, destination, protocol, udp) = ParseIpv4(frame);
        Assert.Equal((0xffffffffu, (byte)17), (destination, protocol));
        Assert.True(UdpPacket.TryParse(udp, out var datagram));
        Assert.True(DhcpHeader.TryParse(datagram.Payload, out var header));
        Assert.Equal(0xdeadbeefu, header.TransactionId);
        Assert.True(DhcpPacket.TryParse(datagram.Payload, out var message));
        var options = new Dictionary<DhcpOptionCode, byte[]>();
        var reader = message.GetOptions();
        while (reader.MoveNext())
        {
            options.Add(reader.Code, reader.Value.ToArray());
        }

        Assert.False(reader.IsMalformed);
        return (header, options);
    }
}
