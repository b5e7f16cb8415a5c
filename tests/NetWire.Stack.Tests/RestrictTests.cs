using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>--restrict (QEMU's restrict=on) against the stack, with no sockets: what is refused and counted, what still works.</summary>
public sealed class RestrictTests
{
    private readonly CollectingReceiver _receiver = new();
    private readonly Gateway _gateway;

    public RestrictTests()
    {
        _gateway = new Gateway(new GatewayOptions { Restrict = true, AllowHostLoopback = true }, new FramePool(), new FakeTimeProvider(), NullLogger.Instance);
        _gateway.Attach(_receiver, new WireCounters(), CancellationToken.None);
    }

    [Fact]
    public void OutsideTcpAndHostLoopback_AreReset_DnsAndOutsidePingsDropped_AllCountedAsRestricted()
    {
        Send(BuildTcp(GuestIp, 40000, 0xC0000201, 80, 1000, 0, TcpFlags.Syn, 65535, []));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, ParseTcp(Single()).Header.Flags);
        Send(BuildTcp(GuestIp, 40001, GatewayIp, 22, 1000, 0, TcpFlags.Syn, 65535, []));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, ParseTcp(Single()).Header.Flags);
        Send(BuildUdp(GuestIp, 5353, 0x0A000203, 53, new byte[20]));
        Send(BuildUdp(GuestIp, 5353, 0xC0000201, 123, new byte[20]));
        var echo = new byte[16];
        IcmpHeader.Echo(IcmpType.EchoRequest, 7, 1).WriteTo(echo);
        Send(BuildIpv4(GuestIp, 0xC0000201, 1, echo));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(5, _gateway.Counters.Drops(StackDrop.Restricted));
        Assert.Equal(0, _gateway.Udp.Count);

        // The gateway's own services still answer.
        Send(BuildIpv4(GuestIp, GatewayIp, 1, echo));
        Assert.Equal((byte)1, ParseIpv4(Single()).Protocol);
        Send(BuildUdp(0, 68, 0xffffffff, 67, GatewayProtocolTests.Bootp(DhcpMessageType.Discover, 0), dstMac: MacAddress.Broadcast));
        Assert.Equal((byte)DhcpMessageType.Offer, GatewayProtocolTests.Dhcp(Single()).Options[DhcpOptionCode.MessageType][0]);
    }

    [Fact]
    public void OverIpv6_OutsideTcpAndHostLoopback_AreReset_DnsAndOutsidePingsDropped_TheGatewaysPingStillAnswered()
    {
        Send(BuildTcp6(GuestIp6, 40000, A6("2001:db8::80"), 80, 1000, 0, TcpFlags.Syn, 65535, []));
        Assert.True(TcpHeader.TryParse(ParseIpv6(Single()).Payload, out var reset));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, reset.Flags);
        Send(BuildTcp6(GuestIp6, 40001, GatewayIp6, 22, 1000, 0, TcpFlags.Syn, 65535, []));
        Assert.True(TcpHeader.TryParse(ParseIpv6(Single()).Payload, out reset));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, reset.Flags);
        Send(BuildUdp6(GuestIp6, 5353, DnsIp6, 53, new byte[20]));
        Send(BuildUdp6(GuestIp6, 5353, A6("2001:db8::7b"), 123, new byte[20]));
        Send(BuildIcmpv6(GuestIp6, A6("2001:db8::1"), Icmpv6Type.EchoRequest, 0, 0x1234_0001, []));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(5, _gateway.Counters.Drops(StackDrop.Restricted));
        Assert.Equal(0, _gateway.Udp.Count);

        Send(BuildIcmpv6(GuestIp6, GatewayIp6, Icmpv6Type.EchoRequest, 0, 0x1234_0002, []));
        Assert.True(Icmpv6Packet.TryParse(ParseIpv6(Single()).Payload, out var reply));
        Assert.Equal(Icmpv6Type.EchoReply, reply.Type);
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
}
