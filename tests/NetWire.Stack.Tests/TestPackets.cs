using System.Collections.Concurrent;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.Wire;

namespace NetWire.Stack.Tests;

/// <summary>Builds and parses the guest's side of the wire for tests, through the packet views.</summary>
internal static class TestPackets
{
    public static readonly MacAddress GuestMac = new(0x0200_0000_0015);
    public const uint GuestIp = 0x0A00020F;
    public const uint GatewayIp = 0x0A000202;

    /// <summary>The guest's SLAAC address from <see cref="GuestMac"/> (EUI-64: 00:00:00:ff:fe:00:00:15 with the U/L bit flipped).</summary>
    public static readonly IpAddr GuestIp6 = A6("fd00::ff:fe00:15");

    public static readonly IpAddr GuestLinkLocal = A6("fe80::ff:fe00:15");

    public static readonly IpAddr GatewayIp6 = A6("fd00::2");

    public static readonly IpAddr DnsIp6 = A6("fd00::3");

    public static readonly IpAddr GatewayLinkLocal = A6("fe80::2");

    public static IpAddr A6(string text) => IpAddr.FromAddress(System.Net.IPAddress.Parse(text));

    /// <summary>An IPv6 frame from the guest; <paramref name="payload"/> starts with any extension headers.</summary>
    public static byte[] BuildIpv6(IpAddr source, IpAddr destination, IpProtocol nextHeader, ReadOnlySpan<byte> payload, byte hopLimit = 64, MacAddress? dstMac = null)
    {
        var frame = new byte[Gateway.Ipv6PayloadOffset + payload.Length];
        var mac = dstMac ?? (destination.IsIpv6Multicast ? MacAddress.Ipv6Multicast(destination) : Gateway.GatewayMac);
        new EthernetHeader(mac, GuestMac, EtherType.Ipv6).WriteTo(frame);
        new Ipv6Header(source, destination, nextHeader, payload.Length) { HopLimit = hopLimit }.WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        payload.CopyTo(frame.AsSpan(Gateway.Ipv6PayloadOffset));
        return frame;
    }

    /// <summary>An ICMPv6 message (type, code, bytes 4-7 and <paramref name="body"/>) with its checksum, in a frame.</summary>
    public static byte[] BuildIcmpv6(IpAddr source, IpAddr destination, Icmpv6Type type, byte code, uint restOfHeader, ReadOnlySpan<byte> body, byte hopLimit = 64)
    {
        var icmp = new byte[Icmpv6Packet.HeaderLength + body.Length];
        body.CopyTo(icmp.AsSpan(Icmpv6Packet.HeaderLength));
        new Icmpv6Header(type, code, restOfHeader).WriteTo(icmp, PseudoHeader.Create(source, destination, IpProtocol.Icmpv6));
        return BuildIpv6(source, destination, IpProtocol.Icmpv6, icmp, hopLimit);
    }

    public static byte[] BuildUdp6(IpAddr source, ushort sourcePort, IpAddr destination, ushort destinationPort, ReadOnlySpan<byte> data)
    {
        var udp = new byte[UdpPacket.HeaderLength + data.Length];
        data.CopyTo(udp.AsSpan(UdpPacket.HeaderLength));
        new UdpHeader(sourcePort, destinationPort).WriteTo(udp, PseudoHeader.Create(source, destination, IpProtocol.Udp));
        return BuildIpv6(source, destination, IpProtocol.Udp, udp);
    }

    public static byte[] BuildTcp6(IpAddr source, ushort sourcePort, IpAddr destination, ushort destinationPort, uint seq, uint ack, TcpFlags flags, ushort window, ReadOnlySpan<byte> data, TcpOptions options = default)
    {
        var header = new TcpHeader(sourcePort, destinationPort, seq, ack, flags, window) { Options = options };
        var tcp = new byte[header.Length + data.Length];
        data.CopyTo(tcp.AsSpan(header.Length));
        header.WriteTo(tcp, PseudoHeader.Create(source, destination, IpProtocol.Tcp));
        return BuildIpv6(source, destination, IpProtocol.Tcp, tcp);
    }

    /// <summary>A TCP segment in an IPv4 or IPv6 frame, as the addresses are.</summary>
    public static byte[] BuildTcpAny(IpAddr source, ushort sourcePort, IpAddr destination, ushort destinationPort, uint seq, uint ack, TcpFlags flags, ushort window, ReadOnlySpan<byte> data, TcpOptions options = default) =>
        source.IsIpv4
            ? BuildTcp(source.Ipv4, sourcePort, destination.Ipv4, destinationPort, seq, ack, flags, window, data, options)
            : BuildTcp6(source, sourcePort, destination, destinationPort, seq, ack, flags, window, data, options);

    /// <summary>The TCP segment in an IPv4 or IPv6 frame from the gateway (checksums verified): addresses, header and data.</summary>
    public static (IpAddr Source, IpAddr Destination, TcpHeader Header, byte[] Data) ParseTcpAny(byte[] frame)
    {
        Assert.True(EthernetFrame.TryParse(frame, out var ethernet), "an Ethernet frame");
        if (ethernet.EtherType == EtherType.Ipv4)
        {
            var (source4, destination4, _, _) = ParseIpv4(frame);
            var (header4, data4) = ParseTcp(frame);
            return (IpAddr.FromIpv4(source4), IpAddr.FromIpv4(destination4), header4, data4);
        }

        var (source, destination, _, next, _, payload) = ParseIpv6(frame);
        Assert.Equal(IpProtocol.Tcp, next);
        Assert.True(TcpHeader.TryParse(payload, out var header), "a TCP header with well-formed options");
        Assert.True(TcpPacket.TryParse(payload, out var segment));
        return (source, destination, header, segment.Payload.ToArray());
    }

    /// <summary>A parsed IPv6 frame from the gateway: addresses, hop limit, next header, the Ethernet destination and the payload (TCP, UDP and ICMPv6 checksums verified).</summary>
    public static (IpAddr Source, IpAddr Destination, byte HopLimit, IpProtocol NextHeader, MacAddress EthernetDestination, byte[] Payload) ParseIpv6(byte[] frame)
    {
        Assert.True(EthernetFrame.TryParse(frame, out var ethernet), "an Ethernet frame");
        Assert.Equal(EtherType.Ipv6, ethernet.EtherType);
        Assert.Equal(Gateway.GatewayMac, ethernet.Source);
        Assert.True(Ipv6Packet.TryParse(ethernet.Payload, out var ip), "an IPv6 packet");
        Assert.Equal(ethernet.Payload.Length, ip.Bytes.Length);
        var pseudoHeader = ip.PseudoHeaderFor(ip.NextHeader);
        switch (ip.NextHeader)
        {
            case IpProtocol.Tcp:
                Assert.True(TcpPacket.TryParse(ip.Payload, out var tcp) && tcp.IsChecksumValid(pseudoHeader), "TCP checksum");
                break;
            case IpProtocol.Udp:
                Assert.True(UdpPacket.TryParse(ip.Payload, out var udp) && udp.IsChecksumValid(pseudoHeader), "UDP checksum");
                break;
            case IpProtocol.Icmpv6:
                Assert.True(Icmpv6Packet.TryParse(ip.Payload, out var icmp) && icmp.IsChecksumValid(pseudoHeader), "ICMPv6 checksum");
                break;
        }

        return (ip.Source, ip.Destination, ip.HopLimit, ip.NextHeader, ethernet.Destination, ip.Payload.ToArray());
    }

    public static byte[] BuildIpv4(uint source, uint destination, byte protocol, ReadOnlySpan<byte> payload, byte ttl = 64, bool moreFragments = false, MacAddress? dstMac = null)
    {
        var frame = new byte[EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + payload.Length];
        new EthernetHeader(dstMac ?? Gateway.GatewayMac, GuestMac, EtherType.Ipv4).WriteTo(frame);
        new Ipv4Header(source, destination, (IpProtocol)protocol, payload.Length) { TimeToLive = ttl, MoreFragments = moreFragments }
            .WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        payload.CopyTo(frame.AsSpan(Gateway.Ipv4PayloadOffset));
        return frame;
    }

    public static byte[] BuildUdp(uint source, ushort sourcePort, uint destination, ushort destinationPort, ReadOnlySpan<byte> data, MacAddress? dstMac = null)
    {
        var udp = new byte[UdpPacket.HeaderLength + data.Length];
        data.CopyTo(udp.AsSpan(UdpPacket.HeaderLength));
        new UdpHeader(sourcePort, destinationPort).WriteTo(udp, PseudoHeader.Ipv4(source, destination, IpProtocol.Udp));
        return BuildIpv4(source, destination, (byte)IpProtocol.Udp, udp, dstMac: dstMac);
    }

    public static byte[] BuildTcp(uint source, ushort sourcePort, uint destination, ushort destinationPort, uint seq, uint ack, TcpFlags flags, ushort window, ReadOnlySpan<byte> data, TcpOptions options = default)
    {
        var header = new TcpHeader(sourcePort, destinationPort, seq, ack, flags, window) { Options = options };
        var tcp = new byte[header.Length + data.Length];
        data.CopyTo(tcp.AsSpan(header.Length));
        header.WriteTo(tcp, PseudoHeader.Ipv4(source, destination, IpProtocol.Tcp));
        return BuildIpv4(source, destination, (byte)IpProtocol.Tcp, tcp);
    }

    /// <summary>
    /// A SYN whose options are <paramref name="rawOptions"/> as given, which may be malformed (and
    /// so cannot be a <see cref="TcpOptions"/>): the data offset and checksum are set by hand.
    /// </summary>
    public static byte[] BuildSynWithRawOptions(uint source, ushort sourcePort, uint destination, ushort destinationPort, ReadOnlySpan<byte> rawOptions)
    {
        var tcp = new byte[TcpPacket.MinHeaderLength + rawOptions.Length];
        var pseudoHeader = PseudoHeader.Ipv4(source, destination, IpProtocol.Tcp);
        new TcpHeader(sourcePort, destinationPort, 1000, 0, TcpFlags.Syn, 65535).WriteTo(tcp, pseudoHeader);
        rawOptions.CopyTo(tcp.AsSpan(TcpPacket.MinHeaderLength));
        tcp[12] = (byte)(tcp.Length / 4 << 4);
        tcp[16] = 0;
        tcp[17] = 0;
        var checksum = pseudoHeader.Compute(tcp);
        tcp[16] = (byte)(checksum >> 8);
        tcp[17] = (byte)checksum;
        return BuildIpv4(source, destination, (byte)IpProtocol.Tcp, tcp);
    }

    /// <summary>A parsed frame from the gateway: IPv4 fields and the L4 bytes (checksums verified).</summary>
    public static (uint Source, uint Destination, byte Protocol, byte[] Payload) ParseIpv4(byte[] frame)
    {
        Assert.True(EthernetFrame.TryParse(frame, out var ethernet), "an Ethernet frame");
        Assert.Equal(EtherType.Ipv4, ethernet.EtherType);
        Assert.True(Ipv4Packet.TryParse(ethernet.Payload, out var ip), "an IPv4 packet");
        Assert.True(ip.IsHeaderChecksumValid, "IP header checksum");
        if (ip.Protocol == IpProtocol.Tcp)
        {
            Assert.True(TcpPacket.TryParse(ip.Payload, out var tcp) && tcp.IsChecksumValid(ip.PseudoHeader), "TCP checksum");
        }
        else if (ip.Protocol == IpProtocol.Udp)
        {
            Assert.True(UdpPacket.TryParse(ip.Payload, out var udp) && udp.IsChecksumValid(ip.PseudoHeader), "UDP checksum");
        }

        return (ip.Source, ip.Destination, (byte)ip.Protocol, ip.Payload.ToArray());
    }

    /// <summary>The TCP segment in a frame from the gateway (checksums verified), as a header value and its data.</summary>
    public static (TcpHeader Header, byte[] Data) ParseTcp(byte[] frame)
    {
        var (_, _, protocol, payload) = ParseIpv4(frame);
        Assert.Equal((byte)IpProtocol.Tcp, protocol);
        Assert.True(TcpHeader.TryParse(payload, out var header), "a TCP header with well-formed options");
        Assert.True(TcpPacket.TryParse(payload, out var segment));
        return (header, segment.Payload.ToArray());
    }
}

/// <summary>Collects what the gateway sends towards the guest.</summary>
internal sealed class CollectingReceiver : IPacketReceiver
{
    public ConcurrentQueue<byte[]> Frames { get; } = new();

    public bool CanRecvPacket => true;

    public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

    public void RecvPacket(Frame frame)
    {
        Frames.Enqueue(frame.Span.ToArray());
        frame.Dispose();
    }
}
