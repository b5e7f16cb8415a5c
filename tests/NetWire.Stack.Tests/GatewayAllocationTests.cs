using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// The gateway's per-frame path (parse with the packet views, look up the flow, write and emit the
/// answer) allocates nothing once warm: ARP and ICMP answered, a TCP segment for no connection
/// answered with RST, a UDP datagram relayed on an open flow; over IPv6 a neighbour solicitation
/// and an echo answered, the RST, and the relayed datagram.
/// </summary>
public sealed class GatewayAllocationTests
{
    [Fact]
    public void AnsweredAndRelayedFrames_AllocateNothingPerFrame()
    {
        using var sink = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = (ushort)((IPEndPoint)sink.Client.LocalEndPoint!).Port;
        var arp = new byte[EthernetFrame.HeaderLength + ArpPacket.Length];
        new EthernetHeader(MacAddress.Broadcast, GuestMac, EtherType.Arp).WriteTo(arp);
        new ArpHeader(ArpOperation.Request, GuestMac, GuestIp, default, GatewayIp).WriteTo(arp.AsSpan(EthernetFrame.HeaderLength));
        var icmp = new byte[64];
        IcmpHeader.Echo(IcmpType.EchoRequest, 0x1234, 1).WriteTo(icmp);
        byte[][] frames =
        [
            arp,
            BuildIpv4(GuestIp, GatewayIp, (byte)IpProtocol.Icmp, icmp),
            BuildTcp(GuestIp, 40000, GatewayIp, 81, 1, 1, TcpFlags.Ack, 65535, new byte[1400]),
            BuildUdp(GuestIp, 40001, GatewayIp, port, new byte[1000]),
        ];

        AssertAllocateNothing(frames, answeredPerRound: 3);
    }

    [Fact]
    public void AnsweredAndRelayedIpv6Frames_AllocateNothingPerFrame()
    {
        using var sink = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        var port = (ushort)((IPEndPoint)sink.Client.LocalEndPoint!).Port;
        var solicitation = new byte[24];
        GatewayIp6.WriteIpv6To(solicitation);
        new NdpOptionWriter(solicitation.AsSpan(16)).WriteLinkLayerAddress(NdpOptionType.SourceLinkLayerAddress, GuestMac);
        byte[][] frames =
        [
            BuildIcmpv6(GuestIp6, GatewayIp6.SolicitedNodeMulticast, Icmpv6Type.NeighborSolicitation, 0, 0, solicitation, hopLimit: 255),
            BuildIcmpv6(GuestIp6, GatewayIp6, Icmpv6Type.EchoRequest, 0, 0x1234_0001, new byte[56]),
            BuildTcp6(GuestIp6, 40000, GatewayIp6, 81, 1, 1, TcpFlags.Ack, 65535, new byte[1400]),
            BuildUdp6(GuestIp6, 40001, GatewayIp6, port, new byte[1000]),
        ];

        AssertAllocateNothing(frames, answeredPerRound: 3);
    }

    /// <summary>
    /// Sends <paramref name="frames"/> 1,000 times to warm up, then 10,000 times counting this
    /// thread's allocations, which must be none; <paramref name="answeredPerRound"/> frames come back each time.
    /// </summary>
    private static void AssertAllocateNothing(byte[][] frames, int answeredPerRound)
    {
        var gateway = new Gateway(new GatewayOptions { AllowHostLoopback = true }, new FramePool(), TimeProvider.System, NullLogger.Instance);
        var receiver = new DisposingReceiver();
        gateway.Attach(receiver, new WireCounters(), CancellationToken.None);
        try
        {
            Run(gateway, frames, 1000);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Run(gateway, frames, 10_000);
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(0, allocated);
            Assert.Equal(answeredPerRound * 11_000, receiver.Frames);
        }
        finally
        {
            lock (gateway.Sync)
            {
                gateway.Shutdown();
            }
        }
    }

    private static void Run(Gateway gateway, byte[][] frames, int rounds)
    {
        for (var i = 0; i < rounds; i++)
        {
            foreach (var frame in frames)
            {
                lock (gateway.Sync)
                {
                    gateway.OnGuestFrame(frame);
                    gateway.EndOfBatch();
                }
            }
        }
    }

    /// <summary>Returns every frame to its pool at once, as a link with room would take it.</summary>
    private sealed class DisposingReceiver : IPacketReceiver
    {
        public int Frames { get; private set; }

        public bool CanRecvPacket => true;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

        public void RecvPacket(Frame frame)
        {
            Frames++;
            frame.Dispose();
        }
    }
}
