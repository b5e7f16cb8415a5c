using System.Collections.Concurrent;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;

namespace NetWire.Stack.Tests;

/// <summary>Builds and parses the guest's side of the wire for tests, through the packet views.</summary>
internal static class TestPackets
{
    public static readonly MacAddress GuestMac = new(0x0200_0000_0015);
    public const uint GuestIp = 0x0A00020F;
    public const uint GatewayIp = 0x0A000202;

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
