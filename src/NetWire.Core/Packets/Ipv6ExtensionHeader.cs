using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of one IPv6 extension header (RFC 8200 4.3-4.6), as <see cref="Ipv6HeaderChain"/>
/// finds it: its type, the next header, and the fields of a routing or fragment header or the
/// options of a hop-by-hop or destination options header.
/// </summary>
public readonly ref struct Ipv6ExtensionHeader
{
    /// <summary>Every extension header is at least 8 bytes.</summary>
    public const int MinLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    internal Ipv6ExtensionHeader(IpProtocol type, ReadOnlySpan<byte> bytes)
    {
        Type = type;
        _bytes = bytes;
    }

    /// <summary>Which extension header this is.</summary>
    public IpProtocol Type { get; }

    /// <summary>The whole header.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>What follows this header.</summary>
    public IpProtocol NextHeader => (IpProtocol)_bytes[0];

    /// <summary>A routing header's type (RFC 8200 4.4; type 0 is deprecated by RFC 5095).</summary>
    public byte RoutingType => _bytes[2];

    /// <summary>A routing header's segments left.</summary>
    public byte SegmentsLeft => _bytes[3];

    /// <summary>A fragment header's offset in bytes (RFC 8200 4.5).</summary>
    public int FragmentOffset => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]) & 0xfff8;

    /// <summary>A fragment header's M flag.</summary>
    public bool MoreFragments => (_bytes[3] & 1) != 0;

    /// <summary>A fragment header's identification.</summary>
    public uint Identification => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);

    /// <summary>The options of a hop-by-hop or destination options header (RFC 8200 4.2).</summary>
    public Ipv6OptionReader GetOptions() => new(_bytes[2..]);
}
