using System.Buffers.Binary;

namespace NetWire.Stack.Arp;

/// <summary>
/// ARP (RFC 826) for Ethernet/IPv4: answers requests for the gateway's addresses (gateway, DNS)
/// with the gateway MAC and learns the guest's address from what it announces. Everything else
/// (requests for other hosts, replies) is ignored and counted.
/// </summary>
internal sealed class ArpHandler(Gateway gateway)
{
    private const int Length = 28;

    /// <summary>Caller holds the gateway lock.</summary>
    public void OnArp(ReadOnlySpan<byte> arp)
    {
        if (arp.Length < Length)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
        if (BinaryPrimitives.ReadUInt16BigEndian(arp) != 1 || BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != 0x0800 || arp[4] != 6 || arp[5] != 4)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var operation = BinaryPrimitives.ReadUInt16BigEndian(arp[6..]);
        var senderIp = BinaryPrimitives.ReadUInt32BigEndian(arp[14..]);
        var targetIp = BinaryPrimitives.ReadUInt32BigEndian(arp[24..]);
        if (senderIp != 0 && gateway.Options.Network.Contains(senderIp) && senderIp != gateway.GatewayIp && senderIp != gateway.DnsIp
            && gateway.GuestIp == 0)
        {
            gateway.SetGuestIp(senderIp);
        }

        if (operation != 1 || !Owns(targetIp))
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        var frame = gateway.Pool.Rent(Gateway.EthernetHeader + Length);
        var span = frame.Span;
        gateway.WriteEthernet(span, broadcast: false, 0x0806);
        var reply = span[Gateway.EthernetHeader..];
        arp[..6].CopyTo(reply);
        BinaryPrimitives.WriteUInt16BigEndian(reply[6..], 2);
        Gateway.GatewayMac.CopyTo(reply[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(reply[14..], targetIp);
        arp.Slice(8, 10).CopyTo(reply[18..]);
        gateway.Emit(frame);
    }

    private bool Owns(uint address) =>
        address == gateway.GatewayIp || address == gateway.DnsIp || gateway.Options.VirtualServices?.IsVirtualAddress(address) == true;
}
