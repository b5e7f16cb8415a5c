using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Testing;
using Pdn = PacketDotNet;

namespace NetWire.Core.Tests.Packets;

/// <summary>
/// Every frame of every capture in <c>captures/</c>: each layer parsed with the views agrees with
/// PacketDotNet's independent dissection, its checksums verify, and the header values written
/// back give the captured bytes again.
/// </summary>
public sealed class CaptureRoundTripTests
{
    public static TheoryData<string> Files => [.. CaptureFixtures.All.Select(path => Path.GetFileName(path))];

    [Theory]
    [MemberData(nameof(Files))]
    public void EveryFrame_AgreesWithPacketDotNet_AndWritesBackByteForByte(string file)
    {
        var frames = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", file));
        Assert.NotEmpty(frames);
        for (var i = 0; i < frames.Count; i++)
        {
            var frame = frames[i].Frame;
            try
            {
                CheckFrame(frame);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                throw new InvalidOperationException($"{file} frame {i + 1}: {ex.Message}", ex);
            }
        }
    }

    [Fact]
    public void TheCaptures_CoverEveryViewWithRealBytes()
    {
        var seen = new Dictionary<string, int>();
        foreach (var path in CaptureFixtures.All)
        {
            foreach (var (_, frame) in CaptureFixtures.ReadPcapNg(path))
            {
                foreach (var layer in CheckFrame(frame))
                {
                    seen[layer] = seen.GetValueOrDefault(layer) + 1;
                }
            }
        }

        foreach (var layer in new[] { "Ethernet", "ARP", "IPv4", "TCP", "TCP options", "UDP", "DHCP", "ICMP", "IPv6", "IPv6 extension header", "ICMPv6", "NDP" })
        {
            Assert.True(seen.GetValueOrDefault(layer) > 0, $"no {layer} frame in captures/");
        }

        Assert.Equal(4, seen["DHCP"]);
        Assert.Equal(4, seen["ARP"]);
        Assert.Equal(12, seen["ICMP"]);
    }

    [Fact]
    public void TheCaptures_ShowWhatTheirReadmeSays()
    {
        // captures/README.md: the gateway's OFFER of 10.0.2.15, its ARP reply from 52:55:0a:00:02:02,
        // and a guest at 52:54:00:12:34:56 whose TCP SYN offers window scaling.
        var dhcp = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "guest-dhcp.pcapng"));
        var offer = Udp(dhcp[1].Frame);
        Assert.True(DhcpPacket.TryParse(offer, out var message));
        Assert.Equal(DhcpPacket.BootReply, message.Operation);
        Assert.Equal("10.0.2.15", Ip.Format(message.YourAddress));
        var options = message.GetOptions();
        var type = DhcpMessageType.None;
        while (options.MoveNext())
        {
            type = options.Code == DhcpOptionCode.MessageType ? (DhcpMessageType)options.Value[0] : type;
        }

        Assert.Equal(DhcpMessageType.Offer, type);

        var arp = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "guest-arp.pcapng"));
        Assert.True(EthernetFrame.TryParse(arp[1].Frame, out var ethernet));
        Assert.True(ArpPacket.TryParse(ethernet.Payload, out var reply));
        Assert.Equal(ArpOperation.Reply, reply.Operation);
        Assert.Equal("52:55:0a:00:02:02", reply.SenderHardwareAddress.ToString());
        Assert.Equal("52:54:00:12:34:56", reply.TargetHardwareAddress.ToString());

        var tcp = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "guest-tcp.pcapng"));
        Assert.True(EthernetFrame.TryParse(tcp[0].Frame, out ethernet));
        Assert.True(Ipv4Packet.TryParse(ethernet.Payload, out var ip));
        Assert.True(TcpPacket.TryParse(ip.Payload, out var syn));
        Assert.Equal(TcpFlags.Syn, syn.Flags);
        Assert.True(TcpOptions.TryParse(syn.Options, out var offered));
        Assert.NotNull(offered.WindowScale);
        Assert.True(offered.SackPermitted);
    }

    [Fact]
    public void TheIpv6Capture_ShowsWhatTheReadmeSays()
    {
        // captures/README.md: the gateway's router advertisement from fe80::2 with the fd00::/64
        // prefix, its neighbour advertisement for fd00::2, and the guest's SLAAC address in the SYN.
        var frames = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "guest-ipv6.pcapng"));
        var advertisements = 0;
        var neighbours = 0;
        var syns = 0;
        foreach (var (_, frame) in frames)
        {
            Assert.True(EthernetFrame.TryParse(frame, out var ethernet));
            Assert.True(Ipv6Packet.TryParse(ethernet.Payload, out var ip));
            var chain = ip.GetHeaderChain();
            while (chain.MoveNext())
            {
            }

            if (chain.UpperProtocol == IpProtocol.Tcp && TcpPacket.TryParse(chain.UpperPayload, out var tcp) && tcp.Flags == TcpFlags.Syn)
            {
                syns++;
                Assert.Equal("fd00::5054:ff:fe12:3456", ip.Source.ToString());
                Assert.Equal("fd00::2", ip.Destination.ToString());
            }

            if (chain.UpperProtocol != IpProtocol.Icmpv6 || !NdpMessage.TryParse(chain.UpperPayload, out var ndp))
            {
                continue;
            }

            if (ndp.Type == Icmpv6Type.RouterAdvertisement)
            {
                advertisements++;
                Assert.Equal("fe80::2", ip.Source.ToString());
                Assert.Equal(255, ip.HopLimit);
                Assert.Equal("52:55:0a:00:02:02", ethernet.Source.ToString());
                var options = ndp.GetOptions();
                var prefix = "";
                while (options.MoveNext())
                {
                    prefix = options.Type == NdpOptionType.PrefixInformation ? $"{IpAddr.FromIpv6(options.Value.Slice(14, 16))}/{options.Value[0]}" : prefix;
                }

                Assert.Equal("fd00::/64", prefix);
            }
            else if (ndp.Type == Icmpv6Type.NeighborAdvertisement)
            {
                neighbours++;
                Assert.Equal("fd00::2", ndp.TargetAddress.ToString());
                Assert.True(ndp.SolicitedFlag && ndp.RouterFlag);
            }
        }

        Assert.True(advertisements >= 1);
        Assert.Equal(1, neighbours);
        Assert.Equal(1, syns);
    }

    private static byte[] Udp(byte[] frame)
    {
        Assert.True(EthernetFrame.TryParse(frame, out var ethernet));
        Assert.True(Ipv4Packet.TryParse(ethernet.Payload, out var ip));
        Assert.True(UdpPacket.TryParse(ip.Payload, out var udp));
        return udp.Payload.ToArray();
    }

    /// <summary>Checks one frame layer by layer; returns the layers it found.</summary>
    private static List<string> CheckFrame(byte[] frame)
    {
        var layers = new List<string> { "Ethernet" };
        var pdn = (Pdn.EthernetPacket)Pdn.Packet.ParsePacket(Pdn.LinkLayers.Ethernet, frame);
        Assert.True(EthernetFrame.TryParse(frame, out var ethernet));
        Assert.Equal(pdn.DestinationHardwareAddress.GetAddressBytes(), Bytes(ethernet.Destination));
        Assert.Equal(pdn.SourceHardwareAddress.GetAddressBytes(), Bytes(ethernet.Source));
        Assert.Equal((ushort)pdn.Type, (ushort)ethernet.EtherType);
        Assert.True(EthernetHeader.TryParse(frame, out var ethernetHeader));
        AssertWritesBack(frame.AsSpan(0, EthernetFrame.HeaderLength), ethernetHeader.WriteTo);

        switch (ethernet.EtherType)
        {
            case EtherType.Arp:
                layers.Add("ARP");
                CheckArp(ethernet.Payload, pdn.Extract<Pdn.ArpPacket>());
                break;
            case EtherType.Ipv4:
                layers.Add("IPv4");
                CheckIpv4(ethernet.Payload, pdn.Extract<Pdn.IPv4Packet>(), layers);
                break;
            case EtherType.Ipv6:
                layers.Add("IPv6");
                CheckIpv6(ethernet.Payload, pdn.Extract<Pdn.IPv6Packet>(), layers);
                break;
        }

        return layers;
    }

    private static void CheckArp(ReadOnlySpan<byte> bytes, Pdn.ArpPacket pdn)
    {
        Assert.True(ArpPacket.TryParse(bytes, out var arp));
        Assert.Equal((ushort)pdn.Operation, (ushort)arp.Operation);
        Assert.Equal(pdn.SenderHardwareAddress.GetAddressBytes(), Bytes(arp.SenderHardwareAddress));
        Assert.Equal(pdn.TargetHardwareAddress.GetAddressBytes(), Bytes(arp.TargetHardwareAddress));
        Assert.Equal(pdn.SenderProtocolAddress, Ip.ToAddress(arp.SenderProtocolAddress));
        Assert.Equal(pdn.TargetProtocolAddress, Ip.ToAddress(arp.TargetProtocolAddress));
        Assert.True(ArpHeader.TryParse(bytes, out var header));
        AssertWritesBack(bytes[..ArpPacket.Length], header.WriteTo);
    }

    private static void CheckIpv4(ReadOnlySpan<byte> bytes, Pdn.IPv4Packet pdn, List<string> layers)
    {
        Assert.True(Ipv4Packet.TryParse(bytes, out var ip));
        Assert.Equal(pdn.HeaderLength * 4, ip.HeaderLength);
        Assert.Equal(pdn.TotalLength, ip.TotalLength);
        Assert.Equal(pdn.TotalLength, ip.Bytes.Length);
        Assert.Equal(pdn.Id, ip.Identification);
        Assert.Equal(pdn.TimeToLive, ip.TimeToLive);
        Assert.Equal((int)pdn.Protocol, (int)ip.Protocol);
        Assert.Equal(pdn.SourceAddress, Ip.ToAddress(ip.Source));
        Assert.Equal(pdn.DestinationAddress, Ip.ToAddress(ip.Destination));
        Assert.Equal((pdn.FragmentFlags & 2) != 0, ip.DontFragment);
        Assert.Equal((pdn.FragmentFlags & 1) != 0, ip.MoreFragments);
        Assert.True(pdn.ValidIPChecksum);
        Assert.True(ip.IsHeaderChecksumValid);
        if (ip.HeaderLength == Ipv4Packet.MinHeaderLength)
        {
            Assert.True(Ipv4Header.TryParse(bytes, out var header));
            AssertWritesBack(ip.Header, header.WriteTo);
        }

        switch (ip.Protocol)
        {
            case IpProtocol.Tcp:
                layers.Add("TCP");
                CheckTcp(ip.Payload, ip.PseudoHeader, pdn.Extract<Pdn.TcpPacket>(), layers);
                break;
            case IpProtocol.Udp:
                layers.Add("UDP");
                CheckUdp(ip.Payload, ip.PseudoHeader, pdn.Extract<Pdn.UdpPacket>(), layers);
                break;
            case IpProtocol.Icmp:
                layers.Add("ICMP");
                CheckIcmp(ip.Payload, pdn.Extract<Pdn.IcmpV4Packet>());
                break;
        }
    }

    private static void CheckIpv6(ReadOnlySpan<byte> bytes, Pdn.IPv6Packet pdn, List<string> layers)
    {
        Assert.True(Ipv6Packet.TryParse(bytes, out var ip));
        Assert.Equal(pdn.PayloadLength, ip.PayloadLength);
        Assert.Equal(pdn.HopLimit, ip.HopLimit);
        Assert.Equal(pdn.FlowLabel, (int)ip.FlowLabel);
        Assert.Equal(pdn.TrafficClass, ip.TrafficClass);
        Assert.Equal((int)pdn.NextHeader, (int)ip.NextHeader);
        Assert.Equal(pdn.SourceAddress, ip.Source.ToIPAddress());
        Assert.Equal(pdn.DestinationAddress, ip.Destination.ToIPAddress());
        Assert.True(Ipv6Header.TryParse(bytes, out var header));
        AssertWritesBack(ip.Header, header.WriteTo);

        var chain = ip.GetHeaderChain();
        while (chain.MoveNext())
        {
            layers.Add("IPv6 extension header");
            var options = chain.Current.GetOptions();
            while (options.MoveNext())
            {
            }

            Assert.False(options.IsMalformed);
        }

        Assert.False(chain.IsMalformed);
        var pseudoHeader = ip.PseudoHeaderFor(chain.UpperProtocol);
        switch (chain.UpperProtocol)
        {
            case IpProtocol.Tcp:
                layers.Add("TCP");
                CheckTcp(chain.UpperPayload, pseudoHeader, pdn.Extract<Pdn.TcpPacket>(), layers);
                break;
            case IpProtocol.Udp:
                layers.Add("UDP");
                CheckUdp(chain.UpperPayload, pseudoHeader, pdn.Extract<Pdn.UdpPacket>(), layers);
                break;
            case IpProtocol.Icmpv6:
                layers.Add("ICMPv6");
                CheckIcmpv6(chain.UpperPayload, pseudoHeader, layers);
                break;
        }
    }

    private static void CheckIcmpv6(ReadOnlySpan<byte> bytes, PseudoHeader pseudoHeader, List<string> layers)
    {
        Assert.True(Icmpv6Packet.TryParse(bytes, out var icmp));
        Assert.True(icmp.IsChecksumValid(pseudoHeader));
        Assert.True(Icmpv6Header.TryParse(bytes, out var header));
        AssertWritesBack(bytes, Icmpv6Packet.HeaderLength, message => header.WriteTo(message, pseudoHeader));
        if (NdpMessage.TryParse(bytes, out var ndp))
        {
            layers.Add("NDP");
            var options = ndp.GetOptions();
            while (options.MoveNext())
            {
                if (options.Type is NdpOptionType.SourceLinkLayerAddress or NdpOptionType.TargetLinkLayerAddress)
                {
                    Assert.True(options.TryGetLinkLayerAddress(out _));
                }
            }

            Assert.False(options.IsMalformed);
        }
    }

    private static void CheckTcp(ReadOnlySpan<byte> segmentBytes, PseudoHeader pseudoHeader, Pdn.TcpPacket pdn, List<string> layers)
    {
        Assert.True(TcpPacket.TryParse(segmentBytes, out var tcp));
        Assert.Equal(pdn.SourcePort, tcp.SourcePort);
        Assert.Equal(pdn.DestinationPort, tcp.DestinationPort);
        Assert.Equal(pdn.SequenceNumber, tcp.SequenceNumber);
        Assert.Equal(pdn.AcknowledgmentNumber, tcp.AckNumber);
        Assert.Equal(pdn.DataOffset * 4, tcp.HeaderLength);
        Assert.Equal(pdn.Flags & 0xff, (int)tcp.Flags);
        Assert.Equal(pdn.Synchronize, (tcp.Flags & TcpFlags.Syn) != 0);
        Assert.Equal(pdn.Acknowledgment, (tcp.Flags & TcpFlags.Ack) != 0);
        Assert.Equal(pdn.Finished, (tcp.Flags & TcpFlags.Fin) != 0);
        Assert.Equal(pdn.WindowSize, tcp.Window);
        Assert.Equal(pdn.UrgentPointer, tcp.UrgentPointer);
        Assert.Equal(pdn.PayloadData?.Length ?? 0, tcp.Payload.Length);
        Assert.True(pdn.ValidTcpChecksum);
        Assert.True(tcp.IsChecksumValid(pseudoHeader));

        Assert.True(TcpOptions.TryParse(tcp.Options, out var options));
        if (tcp.Options.Length > 0)
        {
            layers.Add("TCP options");
        }

        var pdnOptions = pdn.OptionsCollection ?? [];
        Assert.Equal(pdnOptions.OfType<Pdn.Tcp.MaximumSegmentSizeOption>().SingleOrDefault()?.Value, options.MaxSegmentSize);
        Assert.Equal(pdnOptions.OfType<Pdn.Tcp.WindowScaleFactorOption>().SingleOrDefault()?.ScaleFactor, options.WindowScale);
        Assert.Equal(pdnOptions.OfType<Pdn.Tcp.SelectiveAcknowledgmentPermittedOption>().Any(), options.SackPermitted);
        var timestamps = pdnOptions.OfType<Pdn.Tcp.TimeStampOption>().SingleOrDefault();
        Assert.Equal(timestamps is null ? null : new TcpTimestamps(timestamps.Value, timestamps.EchoReply), options.Timestamps);

        Assert.True(TcpHeader.TryParse(segmentBytes, out var header));
        Assert.Equal(tcp.HeaderLength, header.Length);
        AssertWritesBack(segmentBytes, tcp.HeaderLength, segment => header.WriteTo(segment, pseudoHeader));
    }

    private static void CheckUdp(ReadOnlySpan<byte> datagramBytes, PseudoHeader pseudoHeader, Pdn.UdpPacket pdn, List<string> layers)
    {
        Assert.True(UdpPacket.TryParse(datagramBytes, out var udp));
        Assert.Equal(pdn.SourcePort, udp.SourcePort);
        Assert.Equal(pdn.DestinationPort, udp.DestinationPort);
        Assert.Equal(pdn.Length, udp.Length);
        Assert.Equal(pdn.Checksum, udp.Checksum);
        Assert.True(pdn.ValidUdpChecksum);
        Assert.True(udp.IsChecksumValid(pseudoHeader));
        Assert.True(UdpHeader.TryParse(datagramBytes, out var header));
        AssertWritesBack(udp.Bytes, UdpPacket.HeaderLength, datagram => header.WriteTo(datagram, pseudoHeader));

        if (udp.SourcePort is 67 or 68)
        {
            layers.Add("DHCP");
            CheckDhcp(udp.Payload, pdn.Extract<Pdn.DhcpV4Packet>());
        }
    }

    private static void CheckDhcp(ReadOnlySpan<byte> bytes, Pdn.DhcpV4Packet pdn)
    {
        Assert.True(DhcpPacket.TryParse(bytes, out var dhcp));
        Assert.Equal((byte)pdn.Operation, dhcp.Operation);
        Assert.Equal(pdn.TransactionId, dhcp.TransactionId);
        Assert.Equal(pdn.Flags, dhcp.Flags);
        Assert.Equal(pdn.ClientAddress, Ip.ToAddress(dhcp.ClientAddress));
        Assert.Equal(pdn.YourAddress, Ip.ToAddress(dhcp.YourAddress));
        Assert.Equal(pdn.ServerAddress, Ip.ToAddress(dhcp.ServerAddress));
        Assert.Equal(pdn.GatewayAddress, Ip.ToAddress(dhcp.RelayAddress));
        Assert.Equal(pdn.ClientHardwareAddress.GetAddressBytes(), Bytes(dhcp.ClientMac));
        Assert.Equal(DhcpPacket.MagicCookie, pdn.MagicNumber);

        var pdnOptions = pdn.GetOptions();
        var codes = new List<int>();
        var options = dhcp.GetOptions();
        while (options.MoveNext())
        {
            codes.Add((int)options.Code);
        }

        Assert.False(options.IsMalformed);
        Assert.Equal(pdnOptions.Select(o => (int)o.OptionType).Where(c => c is not (0 or 255)), codes);
        Assert.Equal((byte)pdn.MessageType, (byte)Message(dhcp));

        // The fixed part, then each option in turn and End: the rest of the captured bytes is padding.
        Assert.True(DhcpHeader.TryParse(bytes, out var header));
        var written = new byte[bytes.Length];
        header.WriteTo(written);
        var writer = new DhcpOptionWriter(written.AsSpan(DhcpPacket.OptionsOffset));
        options = dhcp.GetOptions();
        while (options.MoveNext())
        {
            writer.Write(options.Code, options.Value);
        }

        writer.WriteEnd();
        Assert.Equal(bytes.ToArray(), written);
    }

    private static DhcpMessageType Message(DhcpPacket dhcp)
    {
        var options = dhcp.GetOptions();
        while (options.MoveNext())
        {
            if (options.Code == DhcpOptionCode.MessageType)
            {
                return (DhcpMessageType)options.Value[0];
            }
        }

        return DhcpMessageType.None;
    }

    private static void CheckIcmp(ReadOnlySpan<byte> bytes, Pdn.IcmpV4Packet pdn)
    {
        Assert.True(IcmpPacket.TryParse(bytes, out var icmp));
        Assert.Equal((ushort)pdn.TypeCode >> 8, (int)icmp.Type);
        Assert.Equal((ushort)pdn.TypeCode & 0xff, icmp.Code);
        Assert.Equal(pdn.Id, icmp.Identifier);
        Assert.Equal(pdn.Sequence, icmp.SequenceNumber);
        Assert.Equal(pdn.Checksum, icmp.Checksum);
        Assert.True(pdn.ValidIcmpChecksum);
        Assert.True(icmp.IsChecksumValid);
        Assert.False(icmp.IsError);
        Assert.True(IcmpHeader.TryParse(bytes, out var header));
        AssertWritesBack(bytes, IcmpPacket.HeaderLength, header.WriteTo);
    }

    private static byte[] Bytes(MacAddress address)
    {
        var bytes = new byte[MacAddress.Length];
        address.WriteTo(bytes);
        return bytes;
    }

    private delegate void SpanWriter(Span<byte> destination);

    /// <summary>A header written into zeroed bytes of the same length is the captured header.</summary>
    private static void AssertWritesBack(ReadOnlySpan<byte> captured, SpanWriter write)
    {
        var written = new byte[captured.Length];
        write(written);
        Assert.Equal(captured.ToArray(), written);
    }

    /// <summary>
    /// A header (with its checksum) written over a copy of the captured packet whose first
    /// <paramref name="headerLength"/> bytes were zeroed is the captured packet.
    /// </summary>
    private static void AssertWritesBack(ReadOnlySpan<byte> captured, int headerLength, SpanWriter write)
    {
        var written = captured.ToArray();
        written.AsSpan(0, headerLength).Clear();
        write(written);
        Assert.Equal(captured.ToArray(), written);
    }
}
