using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of a DHCP message (RFC 2131 2): the fixed BOOTP part (RFC 951), the magic cookie, and
/// the options after it (walk them with <see cref="GetOptions"/>).
/// </summary>
public readonly ref struct DhcpPacket
{
    /// <summary>The fixed BOOTP fields: 236 bytes.</summary>
    public const int BootpLength = 236;

    /// <summary>Where the 128-byte boot file name (<c>file</c>) starts.</summary>
    public const int BootFileOffset = 108;

    /// <summary>Where the options start: after the fixed part and the 4-byte magic cookie.</summary>
    public const int OptionsOffset = BootpLength + 4;

    /// <summary>The magic cookie 99.130.83.99 (RFC 2131 3).</summary>
    public const uint MagicCookie = 0x63825363;

    /// <summary>The op of a message from a client.</summary>
    public const byte BootRequest = 1;

    /// <summary>The op of a message from a server.</summary>
    public const byte BootReply = 2;

    private readonly ReadOnlySpan<byte> _bytes;

    private DhcpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>op: <see cref="BootRequest"/> or <see cref="BootReply"/>.</summary>
    public byte Operation => _bytes[0];

    /// <summary>htype: 1 for Ethernet.</summary>
    public byte HardwareType => _bytes[1];

    /// <summary>hlen: 6 for Ethernet.</summary>
    public byte HardwareLength => _bytes[2];

    /// <summary>hops.</summary>
    public byte Hops => _bytes[3];

    /// <summary>xid: the client's transaction id.</summary>
    public uint TransactionId => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);

    /// <summary>secs.</summary>
    public ushort Seconds => BinaryPrimitives.ReadUInt16BigEndian(_bytes[8..]);

    /// <summary>flags (the top bit asks for broadcast replies).</summary>
    public ushort Flags => BinaryPrimitives.ReadUInt16BigEndian(_bytes[10..]);

    /// <summary>ciaddr: the client's address when it has one, host order.</summary>
    public uint ClientAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[12..]);

    /// <summary>yiaddr: the address offered or assigned, host order.</summary>
    public uint YourAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[16..]);

    /// <summary>siaddr, host order.</summary>
    public uint ServerAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[20..]);

    /// <summary>giaddr: the relay agent, host order.</summary>
    public uint RelayAddress => BinaryPrimitives.ReadUInt32BigEndian(_bytes[24..]);

    /// <summary>chaddr: 16 bytes, the client's hardware address first.</summary>
    public ReadOnlySpan<byte> ClientHardwareAddress => _bytes.Slice(28, 16);

    /// <summary>The client's MAC address: the first 6 bytes of chaddr.</summary>
    public MacAddress ClientMac => MacAddress.Read(_bytes[28..]);

    /// <summary>sname: 64 bytes.</summary>
    public ReadOnlySpan<byte> ServerName => _bytes.Slice(44, 64);

    /// <summary>file: 128 bytes.</summary>
    public ReadOnlySpan<byte> BootFile => _bytes.Slice(BootFileOffset, 128);

    /// <summary>The options' bytes, after the magic cookie.</summary>
    public ReadOnlySpan<byte> Options => _bytes[OptionsOffset..];

    /// <summary>Views <paramref name="message"/> (a UDP payload); false when it is shorter than the fixed part and cookie, or the cookie is wrong.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out DhcpPacket view)
    {
        if (message.Length < OptionsOffset || BinaryPrimitives.ReadUInt32BigEndian(message[BootpLength..]) != MagicCookie)
        {
            view = default;
            return false;
        }

        view = new DhcpPacket(message);
        return true;
    }

    /// <summary>A walk over the options.</summary>
    public DhcpOptionReader GetOptions() => new(Options);
}
