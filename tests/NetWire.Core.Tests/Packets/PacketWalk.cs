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
            default:
                return sum;
        }
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
