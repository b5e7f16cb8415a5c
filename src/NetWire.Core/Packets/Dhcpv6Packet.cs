using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of a DHCPv6 client/server message (RFC 8415 8): the message type, the 24-bit
/// transaction id, and the options after them (walk them with <see cref="GetOptions"/>). Relay
/// messages (types 12 and 13) have another layout and are not read.
/// </summary>
public readonly ref struct Dhcpv6Packet
{
    /// <summary>Message type and transaction id: 4 bytes.</summary>
    public const int HeaderLength = 4;

    /// <summary>The UDP port clients listen on (RFC 8415 7.2).</summary>
    public const ushort ClientPort = 546;

    /// <summary>The UDP port servers and relays listen on.</summary>
    public const ushort ServerPort = 547;

    private readonly ReadOnlySpan<byte> _bytes;

    private Dhcpv6Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The message type.</summary>
    public Dhcpv6MessageType MessageType => (Dhcpv6MessageType)_bytes[0];

    /// <summary>The transaction id (24 bits), which a reply copies.</summary>
    public uint TransactionId => BinaryPrimitives.ReadUInt32BigEndian(_bytes) & 0xff_ffff;

    /// <summary>The options after the header.</summary>
    public ReadOnlySpan<byte> Options => _bytes[HeaderLength..];

    /// <summary>A walk over <see cref="Options"/>.</summary>
    public Dhcpv6OptionReader GetOptions() => new(Options);

    /// <summary>Views <paramref name="message"/> (a UDP payload); false when it is shorter than the header.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out Dhcpv6Packet view)
    {
        if (message.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        view = new Dhcpv6Packet(message);
        return true;
    }
}

/// <summary>DHCPv6 message types (RFC 8415 7.3).</summary>
public enum Dhcpv6MessageType : byte
{
    /// <summary>SOLICIT: a client looking for servers that assign addresses.</summary>
    Solicit = 1,

    /// <summary>ADVERTISE.</summary>
    Advertise = 2,

    /// <summary>REQUEST.</summary>
    Request = 3,

    /// <summary>CONFIRM.</summary>
    Confirm = 4,

    /// <summary>RENEW.</summary>
    Renew = 5,

    /// <summary>REBIND.</summary>
    Rebind = 6,

    /// <summary>REPLY.</summary>
    Reply = 7,

    /// <summary>RELEASE.</summary>
    Release = 8,

    /// <summary>DECLINE.</summary>
    Decline = 9,

    /// <summary>RECONFIGURE.</summary>
    Reconfigure = 10,

    /// <summary>INFORMATION-REQUEST: configuration without addresses (stateless DHCPv6, RFC 8415 6.1).</summary>
    InformationRequest = 11,
}

/// <summary>DHCPv6 option codes the appliance reads or writes (RFC 8415 21, RFC 3646 3).</summary>
public enum Dhcpv6OptionCode : ushort
{
    /// <summary>Client identifier (a DUID).</summary>
    ClientId = 1,

    /// <summary>Server identifier (a DUID).</summary>
    ServerId = 2,

    /// <summary>Option request: the codes the client wants.</summary>
    OptionRequest = 6,

    /// <summary>Elapsed time.</summary>
    ElapsedTime = 8,

    /// <summary>Status code.</summary>
    StatusCode = 13,

    /// <summary>Rapid commit.</summary>
    RapidCommit = 14,

    /// <summary>DNS recursive name servers (RFC 3646 3).</summary>
    DnsServers = 23,

    /// <summary>Domain search list (RFC 3646 4).</summary>
    DomainList = 24,

    /// <summary>Information refresh time (RFC 8415 21.23).</summary>
    InformationRefreshTime = 32,
}
