using System.Buffers.Binary;
using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>Writes DHCPv6 options (RFC 8415 21.1) one after another into a span (the bytes after the message header).</summary>
public ref struct Dhcpv6OptionWriter
{
    private readonly Span<byte> _destination;

    /// <summary>Starts writing at the start of <paramref name="destination"/>.</summary>
    public Dhcpv6OptionWriter(Span<byte> destination)
    {
        _destination = destination;
        Written = 0;
    }

    /// <summary>Bytes written so far.</summary>
    public int Written { get; private set; }

    /// <summary>An option with the data <paramref name="value"/>.</summary>
    public void Write(Dhcpv6OptionCode code, ReadOnlySpan<byte> value) => value.CopyTo(Begin(code, value.Length));

    /// <summary>An option with a four-byte value (a time in seconds).</summary>
    public void Write(Dhcpv6OptionCode code, uint value) => BinaryPrimitives.WriteUInt32BigEndian(Begin(code, 4), value);

    /// <summary>An option holding one IPv6 address (the DNS servers option with one server).</summary>
    public void Write(Dhcpv6OptionCode code, IpAddr address) => address.WriteIpv6To(Begin(code, 16));

    /// <summary>A DUID-LL (RFC 8415 11.4: type 3, hardware type 1 for Ethernet, the MAC) as option <paramref name="code"/>.</summary>
    public void WriteLinkLayerDuid(Dhcpv6OptionCode code, MacAddress address)
    {
        var value = Begin(code, 4 + MacAddress.Length);
        BinaryPrimitives.WriteUInt16BigEndian(value, 3);
        BinaryPrimitives.WriteUInt16BigEndian(value[2..], 1);
        address.WriteTo(value[4..]);
    }

    private Span<byte> Begin(Dhcpv6OptionCode code, int length)
    {
        BinaryPrimitives.WriteUInt16BigEndian(_destination[Written..], (ushort)code);
        BinaryPrimitives.WriteUInt16BigEndian(_destination[(Written + 2)..], checked((ushort)length));
        var value = _destination.Slice(Written + 4, length);
        Written += 4 + length;
        return value;
    }
}
