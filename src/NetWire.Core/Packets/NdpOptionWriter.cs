using System.Buffers.Binary;
using NetWire.Core.Net;

namespace NetWire.Core.Packets;

/// <summary>Writes neighbour discovery options one after another into a span (the bytes after a message's fixed part).</summary>
public ref struct NdpOptionWriter
{
    private readonly Span<byte> _destination;

    /// <summary>Starts writing at the start of <paramref name="destination"/>.</summary>
    public NdpOptionWriter(Span<byte> destination)
    {
        _destination = destination;
        Written = 0;
    }

    /// <summary>Bytes written so far.</summary>
    public int Written { get; private set; }

    /// <summary>A source or target link-layer address option (8 bytes).</summary>
    public void WriteLinkLayerAddress(NdpOptionType type, MacAddress address) => address.WriteTo(Begin(type, 1));

    /// <summary>
    /// A prefix information option (RFC 4861 4.6.2, 32 bytes): <paramref name="prefix"/> of
    /// <paramref name="prefixLength"/> bits, the L and A <paramref name="flags"/>, and lifetimes in seconds.
    /// </summary>
    public void WritePrefixInformation(IpAddr prefix, byte prefixLength, byte flags, uint validLifetime, uint preferredLifetime)
    {
        var value = Begin(NdpOptionType.PrefixInformation, 4);
        value[0] = prefixLength;
        value[1] = flags;
        BinaryPrimitives.WriteUInt32BigEndian(value[2..], validLifetime);
        BinaryPrimitives.WriteUInt32BigEndian(value[6..], preferredLifetime);
        value.Slice(10, 4).Clear();
        prefix.WriteIpv6To(value.Slice(14, 16));
    }

    /// <summary>An MTU option (RFC 4861 4.6.4, 8 bytes).</summary>
    public void WriteMtu(uint mtu)
    {
        var value = Begin(NdpOptionType.Mtu, 1);
        value[..2].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(value[2..], mtu);
    }

    /// <summary>A recursive DNS server option naming one server (RFC 8106 5.1, 24 bytes), valid for <paramref name="lifetime"/> seconds.</summary>
    public void WriteRecursiveDnsServer(uint lifetime, IpAddr server)
    {
        var value = Begin(NdpOptionType.RecursiveDnsServer, 3);
        value[..2].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(value[2..], lifetime);
        server.WriteIpv6To(value.Slice(6, 16));
    }

    private Span<byte> Begin(NdpOptionType type, int units)
    {
        _destination[Written] = (byte)type;
        _destination[Written + 1] = (byte)units;
        var value = _destination.Slice(Written + 2, (units * 8) - 2);
        Written += units * 8;
        return value;
    }
}
