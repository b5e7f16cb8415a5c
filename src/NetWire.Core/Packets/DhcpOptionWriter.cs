using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>Writes DHCP options (RFC 2132) one after another into a span; <see cref="WriteEnd"/> closes the list.</summary>
public ref struct DhcpOptionWriter
{
    private readonly Span<byte> _destination;

    /// <summary>Starts writing at the start of <paramref name="destination"/> (the bytes after the magic cookie).</summary>
    public DhcpOptionWriter(Span<byte> destination)
    {
        _destination = destination;
        Written = 0;
    }

    /// <summary>Bytes written so far.</summary>
    public int Written { get; private set; }

    /// <summary>An option with a one-byte value.</summary>
    public void Write(DhcpOptionCode code, byte value) => Begin(code, 1)[0] = value;

    /// <summary>An option with a two-byte value.</summary>
    public void Write(DhcpOptionCode code, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(Begin(code, 2), value);

    /// <summary>An option with a four-byte value (an address, host order, or a time in seconds).</summary>
    public void Write(DhcpOptionCode code, uint value) => BinaryPrimitives.WriteUInt32BigEndian(Begin(code, 4), value);

    /// <summary>An option with the value <paramref name="value"/> (at most 255 bytes).</summary>
    public void Write(DhcpOptionCode code, ReadOnlySpan<byte> value) => value.CopyTo(Begin(code, value.Length));

    /// <summary>Options already encoded as code, length and value, copied as they are.</summary>
    public void WriteRaw(ReadOnlySpan<byte> encoded)
    {
        encoded.CopyTo(_destination[Written..]);
        Written += encoded.Length;
    }

    /// <summary>The End option.</summary>
    public void WriteEnd()
    {
        _destination[Written] = (byte)DhcpOptionCode.End;
        Written++;
    }

    private Span<byte> Begin(DhcpOptionCode code, int length)
    {
        _destination[Written] = (byte)code;
        _destination[Written + 1] = checked((byte)length);
        var value = _destination.Slice(Written + 2, length);
        Written += 2 + length;
        return value;
    }
}

/// <summary>DHCP option codes the appliance reads or writes (RFC 2132).</summary>
public enum DhcpOptionCode : byte
{
    /// <summary>Padding.</summary>
    Pad = 0,

    /// <summary>Subnet mask (3.3).</summary>
    SubnetMask = 1,

    /// <summary>Routers (3.5).</summary>
    Router = 3,

    /// <summary>DNS servers (3.8).</summary>
    DomainNameServer = 6,

    /// <summary>Host name (3.14).</summary>
    HostName = 12,

    /// <summary>Domain name (3.17).</summary>
    DomainName = 15,

    /// <summary>Interface MTU (5.1).</summary>
    InterfaceMtu = 26,

    /// <summary>Requested IP address (9.1).</summary>
    RequestedAddress = 50,

    /// <summary>IP address lease time (9.2).</summary>
    LeaseTime = 51,

    /// <summary>DHCP message type (9.6).</summary>
    MessageType = 53,

    /// <summary>Server identifier (9.7).</summary>
    ServerIdentifier = 54,

    /// <summary>TFTP server name (9.4).</summary>
    TftpServerName = 66,

    /// <summary>Bootfile name (9.5).</summary>
    BootFileName = 67,

    /// <summary>Domain search list (RFC 3397).</summary>
    DomainSearch = 119,

    /// <summary>End of the options.</summary>
    End = 255,
}

/// <summary>DHCP message types, the value of option 53 (RFC 2132 9.6).</summary>
public enum DhcpMessageType : byte
{
    /// <summary>No message type option.</summary>
    None = 0,

    /// <summary>DHCPDISCOVER.</summary>
    Discover = 1,

    /// <summary>DHCPOFFER.</summary>
    Offer = 2,

    /// <summary>DHCPREQUEST.</summary>
    Request = 3,

    /// <summary>DHCPDECLINE.</summary>
    Decline = 4,

    /// <summary>DHCPACK.</summary>
    Ack = 5,

    /// <summary>DHCPNAK.</summary>
    Nak = 6,

    /// <summary>DHCPRELEASE.</summary>
    Release = 7,

    /// <summary>DHCPINFORM.</summary>
    Inform = 8,
}
