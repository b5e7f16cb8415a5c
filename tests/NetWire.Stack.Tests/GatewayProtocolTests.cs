using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>ARP, DHCP, ICMP echo and bad input against the stack, with no sockets.</summary>
public sealed class GatewayProtocolTests
{
    private readonly CollectingReceiver _receiver = new();
    private readonly Gateway _gateway;

    public GatewayProtocolTests()
    {
        _gateway = new Gateway(new GatewayOptions(), new FramePool(), new FakeTimeProvider(), NullLogger.Instance);
        _gateway.Attach(_receiver, new WireCounters(), CancellationToken.None);
    }

    private void Send(byte[] frame)
    {
        lock (_gateway.Sync)
        {
            _gateway.OnGuestFrame(frame);
            _gateway.EndOfBatch();
        }
    }

    private byte[] Single()
    {
        Assert.True(_receiver.Frames.TryDequeue(out var frame), "expected a frame from the gateway");
        Assert.Empty(_receiver.Frames);
        return frame;
    }

    [Fact]
    public void ArpRequestForGateway_GetsReplyWithGatewayMac()
    {
        var frame = new byte[42];
        frame.AsSpan(0, 6).Fill(0xff);
        GuestMac.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        var arp = frame.AsSpan(14);
        byte[] header = [0, 1, 8, 0, 6, 4, 0, 1];
        header.CopyTo(arp);
        GuestMac.CopyTo(arp[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(arp[14..], 0x0A000264);
        BinaryPrimitives.WriteUInt32BigEndian(arp[24..], GatewayIp);
        Send(frame);

        var reply = Single();
        Assert.Equal(GuestMac, reply[..6]);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(20)));
        Assert.Equal(Gateway.GatewayMac, reply[22..28]);
        Assert.Equal(GatewayIp, BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(28)));
        Assert.Equal(0x0A000264u, _gateway.GuestIp);
    }

    [Fact]
    public void DhcpDiscoverThenRequest_OffersAndAcksFirstPoolAddress()
    {
        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(1, 0), dstMac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
        var offer = Dhcp(Single());
        Assert.Equal(0x0A00020Fu, BinaryPrimitives.ReadUInt32BigEndian(offer.AsSpan(16)));
        Assert.Equal(2, Option(offer, 53)[0]);
        Assert.Equal(GatewayIp, BinaryPrimitives.ReadUInt32BigEndian(Option(offer, 3)));
        Assert.Equal(0x0A000203u, BinaryPrimitives.ReadUInt32BigEndian(Option(offer, 6)));
        Assert.Equal(1500, BinaryPrimitives.ReadUInt16BigEndian(Option(offer, 26)));

        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(3, 0x0A00020F), dstMac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
        var ack = Dhcp(Single());
        Assert.Equal(5, Option(ack, 53)[0]);
        Assert.Equal(0x0A00020Fu, _gateway.GuestIp);

        Send(BuildUdp(0, 68, 0xffffffff, 67, Bootp(3, 0x0A000263), dstMac: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
        Assert.Equal(6, Option(Dhcp(Single()), 53)[0]);
    }

    [Fact]
    public void EchoToGateway_IsAnswered()
    {
        var icmp = new byte[16];
        icmp[0] = 8;
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(4), 0x1234);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), NetWire.Stack.Ipv4.Checksum.Compute(icmp));
        Send(BuildIpv4(GuestIp, GatewayIp, 1, icmp));
        var (source, destination, protocol, payload) = ParseIpv4(Single());
        Assert.Equal((GatewayIp, GuestIp, (byte)1), (source, destination, protocol));
        Assert.Equal(0, payload[0]);
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4)));
        Assert.True(NetWire.Stack.Ipv4.Checksum.IsValid(NetWire.Stack.Ipv4.Checksum.Add(0, payload)));
    }

    [Fact]
    public void BadInput_IsDroppedAndCountedByReason()
    {
        var good = BuildTcp(GuestIp, 40000, GatewayIp, 80, 1, 0, 0x02, 65535, []);
        var badChecksum = (byte[])good.Clone();
        badChecksum[^1] ^= 0xff;
        badChecksum[^3] ^= 0x55;
        Send(badChecksum);
        Send(BuildIpv4(GuestIp, GatewayIp, 6, new byte[20], fragment: 0x2000));
        Send(BuildIpv4(GuestIp, GatewayIp, 6, new byte[20], ttl: 0));
        Send(good[..30]);
        Send(BuildIpv4(GuestIp, GatewayIp, 47, new byte[8]));
        var badOffset = BuildTcp(GuestIp, 40000, GatewayIp, 80, 1, 0, 0x02, 65535, []);
        badOffset[14 + 20 + 12] = 0xf0;
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
        Send(BuildTcp(GuestIp, 40000, 0x08080808, 80, 1000, 5000, 0x10, 65535, [1, 2, 3]));
        var (_, _, _, tcp) = ParseIpv4(Single());
        Assert.Equal(0x04, tcp[13]);
        Assert.Equal(5000u, BinaryPrimitives.ReadUInt32BigEndian(tcp.AsSpan(4)));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.UnknownFlow));
    }

    [Fact]
    public void SynToHostLoopbackWithoutPermission_IsRefusedWithReset()
    {
        Send(BuildTcp(GuestIp, 40000, GatewayIp, 22, 1000, 0, 0x02, 65535, []));
        var (_, _, _, tcp) = ParseIpv4(Single());
        Assert.Equal(0x14, tcp[13]);
        Assert.Equal(1001u, BinaryPrimitives.ReadUInt32BigEndian(tcp.AsSpan(8)));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.Denied));
    }

    private static byte[] Bootp(byte type, uint requested)
    {
        var bootp = new byte[240 + 3 + 6 + 1];
        bootp[0] = 1;
        bootp[1] = 1;
        bootp[2] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(bootp.AsSpan(4), 0xdeadbeef);
        GuestMac.CopyTo(bootp, 28);
        BinaryPrimitives.WriteUInt32BigEndian(bootp.AsSpan(236), 0x63825363);
        bootp[240] = 53;
        bootp[241] = 1;
        bootp[242] = type;
        bootp[243] = requested == 0 ? (byte)0 : (byte)50;
        bootp[244] = requested == 0 ? (byte)0 : (byte)4;
        BinaryPrimitives.WriteUInt32BigEndian(bootp.AsSpan(245), requested);
        bootp[^1] = 255;
        return bootp;
    }

    private static byte[] Dhcp(byte[] frame)
    {
        var (_, destination, protocol, udp) = ParseIpv4(frame);
        Assert.Equal((0xffffffffu, (byte)17), (destination, protocol));
        var bootp = udp[8..];
        Assert.Equal(0xdeadbeefu, BinaryPrimitives.ReadUInt32BigEndian(bootp.AsSpan(4)));
        return bootp;
    }

    private static byte[] Option(byte[] bootp, byte code)
    {
        var i = 240;
        while (bootp[i] != 255)
        {
            if (bootp[i] == code)
            {
                return bootp.AsSpan(i + 2, bootp[i + 1]).ToArray();
            }

            i += 2 + bootp[i + 1];
        }

        Assert.Fail($"option {code} missing");
        return [];
    }
}
