using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an ARP packet for Ethernet and IPv4 (RFC 826; hardware type 1, protocol 0x0800,
/// address lengths 6 and 4), the only kind on an Ethernet carrying IPv4.
/// </summary>
public readonly ref struct ArpPacket
{
    /// <summary>The packet's length for Ethernet and IPv4: 28 bytes.</summary>
    public const int Length = 28;

    /// <summary>Hardware type Ethernet.</summary>
    public const ushort HardwareTypeEthernet = 1;

    private readonly ReadOnlySpan<byte> _bytes;

    private ArpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The packet's 28 bytes (any Ethernet padding after them left out).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Request or reply.</summary>
    public ArpOperation Operation => (ArpOperation)BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>The sender's MAC address.</summary>
    public MacAddress SenderHardwareAddress => MacAddress.Read(_bytes[8..]);

    /// <summary>The sender's IPv4 address, host order.</summary>
    public uint SenderProtocolAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[14..]);

    /// <summary>The target's MAC address (zero in a request).</summary>
    public MacAddress TargetHardwareAddress => MacAddress.Read(_bytes[18..]);

    /// <summary>The target's IPv4 address, host order.</summary>
    public uint TargetProtocolAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[24..]);

    /// <summary>
    /// Views the ARP packet at the start of <paramref name="packet"/>; false when it is shorter
    /// than 28 bytes or not for Ethernet and IPv4.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out ArpPacket view)
    {
        if (packet.Length < Length
            || BinaryPrimitives.ReadUInt16BigEndian(packet) != HardwareTypeEthernet
            || BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) != (ushort)EtherType.Ipv4
            || packet[4] != MacAddress.Length
            || packet[5] != 4)
        {
            view = default;
            return false;
        }

        view = new ArpPacket(packet[..Length]);
        return true;
    }
}

/// <summary>ARP operation codes (RFC 826).</summary>
public enum ArpOperation : ushort
{
    /// <summary>Not an operation.</summary>
    None = 0,

    /// <summary>Who has the target address?</summary>
    Request = 1,

    /// <summary>The sender has it.</summary>
    Reply = 2,
}
