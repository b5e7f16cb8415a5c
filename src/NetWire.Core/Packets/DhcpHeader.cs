using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// The fixed part of a DHCP message for Ethernet (RFC 2131 2) as values, to write: the BOOTP
/// fields, chaddr as a MAC address, sname and file empty, then the magic cookie. Options follow
/// through a <see cref="DhcpOptionWriter"/>.
/// </summary>
/// <param name="Operation">op: <see cref="DhcpPacket.BootRequest"/> or <see cref="DhcpPacket.BootReply"/>.</param>
/// <param name="TransactionId">xid.</param>
/// <param name="ClientMac">The client's MAC address (chaddr).</param>
public readonly record struct DhcpHeader(byte Operation, uint TransactionId, MacAddress ClientMac)
{
    /// <summary>secs.</summary>
    public ushort Seconds { get; init; }

    /// <summary>flags.</summary>
    public ushort Flags { get; init; }

    /// <summary>ciaddr, host order.</summary>
    public uint ClientAddress { get; init; }

    /// <summary>yiaddr, host order.</summary>
    public uint YourAddress { get; init; }

    /// <summary>siaddr, host order.</summary>
    public uint ServerAddress { get; init; }

    /// <summary>giaddr, host order.</summary>
    public uint RelayAddress { get; init; }

    /// <summary>hops.</summary>
    public byte Hops { get; init; }

    /// <summary>Bytes <see cref="WriteTo"/> writes: the fixed part and the cookie.</summary>
    public static int Length => DhcpPacket.OptionsOffset;

    /// <summary>The fixed part of <paramref name="message"/>; false as <see cref="DhcpPacket.TryParse"/>, or when it is not for Ethernet.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out DhcpHeader header)
    {
        if (!DhcpPacket.TryParse(message, out var view) || view.HardwareType != 1 || view.HardwareLength != MacAddress.Length)
        {
            header = default;
            return false;
        }

        header = new DhcpHeader(view.Operation, view.TransactionId, view.ClientMac)
        {
            Seconds = view.Seconds,
            Flags = view.Flags,
            ClientAddress = view.ClientAddress,
            YourAddress = view.YourAddress,
            ServerAddress = view.ServerAddress,
            RelayAddress = view.RelayAddress,
            Hops = view.Hops,
        };
        return true;
    }

    /// <summary>Writes the 240 bytes (fixed part and cookie) to the start of <paramref name="message"/>.</summary>
    public void WriteTo(Span<byte> message)
    {
        var fixedPart = message[..DhcpPacket.OptionsOffset];
        fixedPart.Clear();
        fixedPart[0] = Operation;
        fixedPart[1] = 1;
        fixedPart[2] = MacAddress.Length;
        fixedPart[3] = Hops;
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[4..], TransactionId);
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart[8..], Seconds);
        BinaryPrimitives.WriteUInt16BigEndian(fixedPart[10..], Flags);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[12..], ClientAddress);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[16..], YourAddress);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[20..], ServerAddress);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[24..], RelayAddress);
        ClientMac.WriteTo(fixedPart[28..]);
        BinaryPrimitives.WriteUInt32BigEndian(fixedPart[DhcpPacket.BootpLength..], DhcpPacket.MagicCookie);
    }
}
