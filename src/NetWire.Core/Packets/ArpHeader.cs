using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>An Ethernet/IPv4 ARP packet (RFC 826) as values: what <see cref="ArpPacket"/> reads, to write.</summary>
/// <param name="Operation">Request or reply.</param>
/// <param name="SenderHardwareAddress">The sender's MAC address.</param>
/// <param name="SenderProtocolAddress">The sender's IPv4 address, host order.</param>
/// <param name="TargetHardwareAddress">The target's MAC address.</param>
/// <param name="TargetProtocolAddress">The target's IPv4 address, host order.</param>
public readonly record struct ArpHeader(
    ArpOperation Operation,
    MacAddress SenderHardwareAddress,
    uint SenderProtocolAddress,
    MacAddress TargetHardwareAddress,
    uint TargetProtocolAddress)
{
    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public static int Length => ArpPacket.Length;

    /// <summary>The ARP packet at the start of <paramref name="packet"/>; false as <see cref="ArpPacket.TryParse"/>.</summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out ArpHeader header)
    {
        if (!ArpPacket.TryParse(packet, out var view))
        {
            header = default;
            return false;
        }

        header = new ArpHeader(view.Operation, view.SenderHardwareAddress, view.SenderProtocolAddress, view.TargetHardwareAddress, view.TargetProtocolAddress);
        return true;
    }

    /// <summary>Writes the 28 bytes to the start of <paramref name="packet"/>.</summary>
    public void WriteTo(Span<byte> packet)
    {
        BinaryPrimitives.WriteUInt16BigEndian(packet, ArpPacket.HardwareTypeEthernet);
        BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)EtherType.Ipv4);
        packet[4] = MacAddress.Length;
        packet[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(packet[6..], (ushort)Operation);
        SenderHardwareAddress.WriteTo(packet[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(packet[14..], SenderProtocolAddress);
        TargetHardwareAddress.WriteTo(packet[18..]);
        BinaryPrimitives.WriteUInt32BigEndian(packet[24..Length], TargetProtocolAddress);
    }
}
