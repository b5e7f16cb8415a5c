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
