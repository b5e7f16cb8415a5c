using NetWire.Core.Packets;

namespace NetWire.Stack.Arp;

/// <summary>
/// ARP (RFC 826) for Ethernet/IPv4: answers requests for the gateway's addresses (gateway, DNS)
/// and guest forwards with the gateway MAC and learns the guest's address from what it announces. Everything else
/// (requests for other hosts, replies) is ignored and counted.
/// </summary>
internal sealed class ArpHandler(Gateway gateway)
{
    /// <summary>Caller holds the gateway lock.</summary>
    public void OnArp(ReadOnlySpan<byte> bytes)
    {
        if (!ArpPacket.TryParse(bytes, out var arp))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var senderIp = arp.SenderProtocolAddress;
        var targetIp = arp.TargetProtocolAddress;
        if (senderIp != 0 && gateway.Options.Network.Contains(senderIp) && senderIp != gateway.GatewayIp && senderIp != gateway.DnsIp
            && gateway.GuestIp == 0)
        {
            gateway.SetGuestIp(senderIp);
        }

        if (arp.Operation != ArpOperation.Request || !Owns(targetIp))
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        var frame = gateway.Pool.Rent(EthernetFrame.HeaderLength + ArpPacket.Length);
        var span = frame.Span;
        gateway.WriteEthernet(span, broadcast: false, EtherType.Arp);
        new ArpHeader(ArpOperation.Reply, Gateway.GatewayMac, targetIp, arp.SenderHardwareAddress, senderIp)
            .WriteTo(span[EthernetFrame.HeaderLength..]);
        gateway.Emit(frame);
    }

    private bool Owns(uint address) =>
        address == gateway.GatewayIp || address == gateway.DnsIp || gateway.IsGuestForwardAddress(address)
        || gateway.Options.VirtualServices?.IsVirtualAddress(address) == true;
}
