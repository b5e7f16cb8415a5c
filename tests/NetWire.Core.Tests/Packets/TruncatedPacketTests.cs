using NetWire.Core.Packets;
using NetWire.Testing;

namespace NetWire.Core.Tests.Packets;

/// <summary>
/// Every prefix of real packets from <c>captures/</c>: a view parses exactly when the bytes hold
/// what its header promises, and a short one is refused with false, never an exception.
/// </summary>
public sealed class TruncatedPacketTests
{
    private static readonly List<byte[]> s_frames =
        [.. CaptureFixtures.All.SelectMany(path => CaptureFixtures.ReadPcapNg(path)).Select(f => f.Frame)];

    private static IEnumerable<byte[]> Payloads(EtherType type) =>
        s_frames.Where(f => EthernetFrame.TryParse(f, out var e) && e.EtherType == type).Select(f => f[EthernetFrame.HeaderLength..]);

    private static IEnumerable<(IpProtocol Protocol, byte[] Payload)> Ipv4Payloads() =>
        Payloads(EtherType.Ipv4).Select(static p =>
        {
            Assert.True(Ipv4Packet.TryParse(p, out var ip));
            return (ip.Protocol, ip.Payload.ToArray());
        });

    [Fact]
    public void Ethernet_ParsesFrom14Bytes()
    {
        var frame = s_frames[0];
        for (var n = 0; n <= frame.Length; n++)
        {
            Assert.Equal(n >= EthernetFrame.HeaderLength, EthernetFrame.TryParse(frame.AsSpan(0, n), out _));
        }
    }

    [Fact]
    public void Arp_ParsesFrom28Bytes()
    {
        foreach (var arp in Payloads(EtherType.Arp))
        {
            for (var n = 0; n <= arp.Length; n++)
            {
                Assert.Equal(n >= ArpPacket.Length, ArpPacket.TryParse(arp.AsSpan(0, n), out var view));
                Assert.Equal(n >= ArpPacket.Length ? ArpPacket.Length : 0, view.Bytes.Length);
            }
        }
    }

    [Fact]
    public void Ipv4_ParsesOnlyWithItsTotalLength_AndAsAQuotedPacketWithItsHeader()
    {
        foreach (var packet in Payloads(EtherType.Ipv4))
        {
            Assert.True(Ipv4Packet.TryParse(packet, out var whole));
            var total = whole.TotalLength;
            for (var n = 0; n <= packet.Length; n++)
            {
                Assert.Equal(n >= total, Ipv4Packet.TryParse(packet.AsSpan(0, n), out var view));
                if (n >= total)
                {
                    Assert.Equal(total, view.Bytes.Length);
                }

                Assert.Equal(n >= whole.HeaderLength, Ipv4Packet.TryParseQuoted(packet.AsSpan(0, n), out var quoted));
                if (n >= whole.HeaderLength)
                {
                    Assert.Equal(Math.Min(n, total) - whole.HeaderLength, quoted.Payload.Length);
                    Assert.Equal(whole.Source, quoted.Source);
                }
            }
        }
    }

    [Fact]
    public void Tcp_ParsesOnlyWithItsWholeHeader()
    {
        foreach (var (_, segment) in Ipv4Payloads().Where(p => p.Protocol == IpProtocol.Tcp))
        {
            Assert.True(TcpPacket.TryParse(segment, out var whole));
            for (var n = 0; n <= segment.Length; n++)
            {
                Assert.Equal(n >= whole.HeaderLength, TcpPacket.TryParse(segment.AsSpan(0, n), out var view));
                if (n >= whole.HeaderLength)
                {
                    Assert.Equal(n - whole.HeaderLength, view.Payload.Length);
                }
            }
        }
    }

    [Fact]
    public void UdpAndDhcp_ParseOnlyWithTheirLengths()
    {
        foreach (var (_, datagram) in Ipv4Payloads().Where(p => p.Protocol == IpProtocol.Udp))
        {
            Assert.True(UdpPacket.TryParse(datagram, out var whole));
            var dhcp = whole.Payload.ToArray();
            for (var n = 0; n <= datagram.Length; n++)
            {
                Assert.Equal(n >= whole.Length, UdpPacket.TryParse(datagram.AsSpan(0, n), out _));
            }

            for (var n = 0; n <= dhcp.Length; n++)
            {
                Assert.Equal(n >= DhcpPacket.OptionsOffset, DhcpPacket.TryParse(dhcp.AsSpan(0, n), out _));
            }
        }
    }

    [Fact]
    public void Icmp_ParsesFrom8Bytes()
    {
        foreach (var (_, message) in Ipv4Payloads().Where(p => p.Protocol == IpProtocol.Icmp))
        {
            for (var n = 0; n <= message.Length; n++)
            {
                Assert.Equal(n >= IcmpPacket.HeaderLength, IcmpPacket.TryParse(message.AsSpan(0, n), out _));
            }
        }
    }

    [Fact]
    public void Dns_ParsesFrom12Bytes()
    {
        var message = new byte[40];
        new DnsHeader(0x1234, 0x0100, 1, 0, 0, 0).WriteTo(message);
        for (var n = 0; n <= message.Length; n++)
        {
            Assert.Equal(n >= DnsPacket.HeaderLength, DnsPacket.TryParse(message.AsSpan(0, n), out var view));
            if (n >= DnsPacket.HeaderLength)
            {
                Assert.Equal(0x1234, view.Id);
                Assert.Equal(n - DnsPacket.HeaderLength, view.Body.Length);
            }
        }
    }
}
