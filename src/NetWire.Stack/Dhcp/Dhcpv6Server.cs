using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Stack.Dhcp;

/// <summary>
/// Stateless DHCPv6 (RFC 8415 6.1): an INFORMATION-REQUEST to ff02::1:2 (or to the gateway) is
/// answered with a REPLY naming the IPv6 DNS address (RFC 3646). Addresses come from SLAAC, so
/// SOLICIT, REQUEST and the rest of stateful DHCPv6 are ignored and counted, as slirp does.
/// </summary>
/// <remarks>
/// The REPLY goes from port 547 of fe80::2 (of fd00::2 to a client asking from its global
/// address) to the client's address and port, with the server's
/// DUID-LL (the gateway MAC), the client's identifier copied when it sent one, and the DNS
/// servers option. RFC 8415 16.12: a request that names a server other than this one, or asks
/// for addresses (IA_NA, IA_TA, IA_PD), is discarded.
/// </remarks>
internal sealed class Dhcpv6Server(Gateway gateway)
{
    /// <summary>All_DHCP_Relay_Agents_and_Servers, ff02::1:2 (RFC 8415 7.1).</summary>
    public static readonly IpAddr AllServers = IpAddr.FromAddress(System.Net.IPAddress.Parse("ff02::1:2"));

    private const ushort IaNa = 3;
    private const ushort IaTa = 4;
    private const ushort IaPd = 25;

    /// <summary>A REPLY's size: header, server DUID-LL (14), DNS servers (20), a client identifier of up to 130 (RFC 8415 11.1).</summary>
    private const int MaxReplyLength = Dhcpv6Packet.HeaderLength + 14 + 20 + 4 + 130;

    /// <summary>A DHCPv6 message from the guest to port 547. Caller holds the gateway lock.</summary>
    public void OnMessage(IpAddr source, ushort sourcePort, IpAddr destination, ReadOnlySpan<byte> bytes)
    {
        if (destination != AllServers && !gateway.IsOwnIpv6(destination))
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        if (!Dhcpv6Packet.TryParse(bytes, out var message))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (message.MessageType != Dhcpv6MessageType.InformationRequest)
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        var clientId = ReadOnlySpan<byte>.Empty;
        var options = message.GetOptions();
        var foreign = false;
        while (options.MoveNext())
        {
            switch (options.Code)
            {
                case Dhcpv6OptionCode.ClientId:
                    clientId = options.Value;
                    break;
                case Dhcpv6OptionCode.ServerId:
                    foreign = true;
                    break;
                case (Dhcpv6OptionCode)IaNa or (Dhcpv6OptionCode)IaTa or (Dhcpv6OptionCode)IaPd:
                    foreign = true;
                    break;
            }
        }

        if (options.IsMalformed || clientId.Length > 130)
        {
            gateway.Counters.Drop(StackDrop.BadOptions);
            return;
        }

        if (foreign)
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        Span<byte> reply = stackalloc byte[MaxReplyLength];
        reply[0] = (byte)Dhcpv6MessageType.Reply;
        message.Bytes[1..Dhcpv6Packet.HeaderLength].CopyTo(reply[1..]);
        var writer = new Dhcpv6OptionWriter(reply[Dhcpv6Packet.HeaderLength..]);
        writer.WriteLinkLayerDuid(Dhcpv6OptionCode.ServerId, Gateway.GatewayMac);
        if (!clientId.IsEmpty)
        {
            writer.Write(Dhcpv6OptionCode.ClientId, clientId);
        }

        writer.Write(Dhcpv6OptionCode.DnsServers, gateway.DnsIp6);
        var length = Dhcpv6Packet.HeaderLength + writer.Written;
        var udpLength = UdpPacket.HeaderLength + length;
        var frame = gateway.RentIp(source, udpLength);
        var udp = frame.Span.Slice(Gateway.Ipv6PayloadOffset, udpLength);
        reply[..length].CopyTo(udp[UdpPacket.HeaderLength..]);
        var from = source.IsIpv6LinkLocal ? Gateway.GatewayLinkLocal : gateway.GatewayIp6;
        new UdpHeader(Dhcpv6Packet.ServerPort, sourcePort).WriteTo(udp, PseudoHeader.Create(from, source, IpProtocol.Udp));
        if (gateway.EmitIpv6(frame, IpProtocol.Udp, from, source, hopLimit: 64))
        {
            gateway.Counters.Dhcpv6Reply();
        }
    }
}
