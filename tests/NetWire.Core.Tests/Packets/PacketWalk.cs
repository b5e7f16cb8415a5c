using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>
/// Parses a frame through every view that applies and reads every field, as the gateway and
/// <c>inspect</c> would; returns a value that depends on all of them (so nothing is skipped).
/// Never throws, whatever the bytes.
/// </summary>
internal static class PacketWalk
{
    public static long Walk(ReadOnlySpan<byte> frame)
    {
        if (!EthernetFrame.TryParse(frame, out var ethernet))
        {
            return -1;
        }

        long sum = (long)ethernet.Destination.ToUInt64() ^ (long)ethernet.Source.ToUInt64() ^ (ushort)ethernet.EtherType;
        switch (ethernet.EtherType)
        {
            case EtherType.Arp when ArpPacket.TryParse(ethernet.Payload, out var arp):
                return sum + (ushort)arp.Operation + arp.SenderProtocolAddress + arp.TargetProtocolAddress
                    + (long)arp.SenderHardwareAddress.ToUInt64() + (long)arp.TargetHardwareAddress.ToUInt64();
            case EtherType.Ipv4 when Ipv4Packet.TryParse(ethernet.Payload, out var ip):
                sum += ip.HeaderLength + ip.TypeOfService + ip.TotalLength + ip.Identification + ip.FragmentOffset + ip.TimeToLive
                    + ip.HeaderChecksum + ip.Source + ip.Destination + ip.Options.Length + (ip.IsHeaderChecksumValid ? 1 : 0)
                    + (ip.DontFragment ? 2 : 0) + (ip.MoreFragments ? 4 : 0) + (ip.IsFragment ? 8 : 0);
                return sum + Transport(ip.Protocol, ip.Payload, ip.PseudoHeader);
            case EtherType.Ipv6 when Ipv6Packet.TryParse(ethernet.Payload, out var ip6):
                return sum + Ipv6(ip6);
            default:
                return sum;
        }
    }

    private static long Ipv6(Ipv6Packet ip)
    {
        var source = ip.Source;
        var destination = ip.Destination;
        long sum = ip.TrafficClass + ip.FlowLabel + ip.PayloadLength + (byte)ip.NextHeader + ip.HopLimit + source.GetHashCode() + destination.GetHashCode()
            + (source.IsIpv6LinkLocal ? 1 : 0) + (destination.IsIpv6Multicast ? 2 : 0) + (destination.IsSolicitedNodeMulticast ? 4 : 0);
        var chain = ip.GetHeaderChain();
        while (chain.MoveNext())
        {
            var header = chain.Current;
            sum += (byte)header.Type + (byte)header.NextHeader + header.Bytes.Length;
            if (header.Type == IpProtocol.Ipv6Routing)
            {
                sum += header.RoutingType + header.SegmentsLeft;
            }
            else if (header.Type == IpProtocol.Ipv6Fragment)
            {
                sum += header.FragmentOffset + header.Identification + (header.MoreFragments ? 1 : 0);
            }
            else
            {
                var options = header.GetOptions();
                while (options.MoveNext())
                {
                    sum += options.Type + options.UnknownAction + options.Value.Length;
                }

                sum += options.IsMalformed ? 1 : 0;
            }
        }

        sum += chain.Count + (chain.IsMalformed ? 1 : 0);
        var pseudoHeader = ip.PseudoHeaderFor(chain.UpperProtocol);
        if (chain.UpperProtocol == IpProtocol.Icmpv6 && Icmpv6Packet.TryParse(chain.UpperPayload, out var icmp))
        {
            sum += (byte)icmp.Type + icmp.Code + icmp.Checksum + icmp.RestOfHeader + icmp.Identifier + icmp.SequenceNumber
                + icmp.Data.Length + (icmp.IsError ? 1 : 0) + (icmp.IsChecksumValid(pseudoHeader) ? 2 : 0);
            if (icmp.TryGetQuotedPacket(out var quoted))
            {
                sum += quoted.Source.GetHashCode() + quoted.Destination.GetHashCode() + (byte)quoted.NextHeader + quoted.Payload.Length;
            }

            if (NdpMessage.TryParse(icmp.Bytes, out var ndp))
            {
                sum += ndp.Options.Length + (ndp.SolicitedFlag ? 1 : 0) + (ndp.OtherConfigFlag ? 2 : 0) + ndp.RouterLifetime + ndp.ReachableTime
                    + ndp.RetransTimer + ndp.CurrentHopLimit + (ndp.Type is Icmpv6Type.NeighborSolicitation or Icmpv6Type.NeighborAdvertisement or Icmpv6Type.Redirect ? ndp.TargetAddress.GetHashCode() : 0);
                var options = ndp.GetOptions();
                while (options.MoveNext())
                {
                    sum += (byte)options.Type + options.Value.Length + (options.TryGetLinkLayerAddress(out var mac) ? (long)mac.ToUInt64() : 0);
                }

                sum += options.IsMalformed ? 1 : 0;
            }

            return sum;
        }

        if (chain.UpperProtocol == IpProtocol.Udp && UdpPacket.TryParse(chain.UpperPayload, out var udp) && Dhcpv6Packet.TryParse(udp.Payload, out var dhcp)
            && (udp.SourcePort == Dhcpv6Packet.ClientPort || udp.DestinationPort == Dhcpv6Packet.ServerPort))
        {
            sum += (byte)dhcp.MessageType + dhcp.TransactionId;
            var options = dhcp.GetOptions();
            while (options.MoveNext())
            {
                sum += (ushort)options.Code + options.Value.Length;
            }

            sum += options.IsMalformed ? 1 : 0;
        }

        return sum + Transport(chain.UpperProtocol, chain.UpperPayload, pseudoHeader);
    }

    private static long Transport(IpProtocol protocol, ReadOnlySpan<byte> payload, PseudoHeader pseudoHeader)
    {
        switch (protocol)
        {
            case IpProtocol.Tcp when TcpPacket.TryParse(payload, out var tcp):
            {
                long sum = tcp.SourcePort + tcp.DestinationPort + tcp.SequenceNumber + tcp.AckNumber + tcp.HeaderLength + (byte)tcp.Flags
                    + tcp.Window + tcp.Checksum + tcp.UrgentPointer + tcp.Payload.Length + tcp.SegmentLength + (tcp.IsChecksumValid(pseudoHeader) ? 1 : 0);
                if (TcpOptions.TryParse(tcp.Options, out var options))
                {
                    sum += (options.MaxSegmentSize ?? 0) + (options.WindowScale ?? 0) + (options.SackPermitted ? 1 : 0)
                        + (options.Timestamps?.Value ?? 0) + (options.Timestamps?.EchoReply ?? 0) + options.Length;
                }

                return sum;
            }

            case IpProtocol.Udp when UdpPacket.TryParse(payload, out var udp):
            {
                long sum = udp.SourcePort + udp.DestinationPort + udp.Length + udp.Checksum + (udp.IsChecksumValid(pseudoHeader) ? 1 : 0);
                if (DhcpPacket.TryParse(udp.Payload, out var dhcp))
                {
                    sum += dhcp.Operation + dhcp.HardwareType + dhcp.HardwareLength + dhcp.Hops + dhcp.TransactionId + dhcp.Seconds + dhcp.Flags
                        + dhcp.ClientAddress + dhcp.YourAddress + dhcp.ServerAddress + dhcp.RelayAddress + (long)dhcp.ClientMac.ToUInt64()
                        + dhcp.ServerName.Length + dhcp.BootFile.Length;
                    var options = dhcp.GetOptions();
                    while (options.MoveNext())
                    {
                        sum += (byte)options.Code + options.Value.Length;
                    }

                    sum += options.IsMalformed ? 1 : 0;
                }
                else if (DnsPacket.TryParse(udp.Payload, out var dns))
                {
                    sum += dns.Id + dns.Flags + dns.Opcode + dns.ResponseCode + dns.QuestionCount + dns.AnswerCount
                        + dns.AuthorityCount + dns.AdditionalCount + dns.Body.Length + (dns.IsResponse ? 1 : 0);
                }

                return sum;
            }

            case IpProtocol.Icmp when IcmpPacket.TryParse(payload, out var icmp):
            {
                long sum = (byte)icmp.Type + icmp.Code + icmp.Checksum + icmp.RestOfHeader + icmp.Identifier + icmp.SequenceNumber
                    + icmp.NextHopMtu + icmp.Pointer + icmp.Data.Length + (icmp.IsChecksumValid ? 1 : 0);
                if (icmp.TryGetQuotedPacket(out var quoted))
                {
                    sum += quoted.Source + quoted.Destination + (byte)quoted.Protocol + quoted.Payload.Length;
                }

                return sum;
            }

            default:
                return 0;
        }
    }
}
