using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace NetWire.Core.Net;

/// <summary>
/// An IPv4 or IPv6 address as a 16-byte value, for keys and comparisons on the hot path (no
/// allocation, equality is two compares). An IPv4 address is held in its IPv4-mapped IPv6 form
/// (::ffff:a.b.c.d, RFC 4291 2.5.5.2), so one type serves both families; such mapped addresses
/// never appear in IPv6 headers on a link, and an IPv6 layer drops packets that carry them.
/// </summary>
public readonly struct IpAddr : IEquatable<IpAddr>
{
    private const ulong MappedPrefix = 0x0000_FFFF_0000_0000UL;

    /// <summary>Bytes 0-7 of the IPv6 form, big-endian.</summary>
    private readonly ulong _high;

    /// <summary>Bytes 8-15 of the IPv6 form, big-endian.</summary>
    private readonly ulong _low;

    private IpAddr(ulong high, ulong low)
    {
        _high = high;
        _low = low;
    }

    /// <summary>True for an IPv4 address.</summary>
    public bool IsIpv4 => _high == 0 && (_low & 0xFFFF_FFFF_0000_0000UL) == MappedPrefix;

    /// <summary>The IPv4 address as a host-order number (10.0.2.2 is 0x0A000202); only for <see cref="IsIpv4"/> addresses.</summary>
    public uint Ipv4
    {
        get
        {
            Debug.Assert(IsIpv4, "an IPv4 value of an IPv6 address");
            return (uint)_low;
        }
    }

    /// <summary>:: (RFC 4291 2.5.2), the source of a packet from an interface without an address yet (duplicate address detection).</summary>
    public static IpAddr Ipv6Unspecified => default;

    /// <summary>::1 (RFC 4291 2.5.3).</summary>
    public static IpAddr Ipv6Loopback => new(0, 1);

    /// <summary>ff02::1, every node on the link (RFC 4291 2.7.1).</summary>
    public static IpAddr Ipv6AllNodes => new(0xff02_0000_0000_0000UL, 1);

    /// <summary>True for the IPv6 unspecified address ::.</summary>
    public bool IsIpv6Unspecified => _high == 0 && _low == 0;

    /// <summary>True for an IPv6 multicast address, ff00::/8 (RFC 4291 2.7).</summary>
    public bool IsIpv6Multicast => _high >> 56 == 0xff;

    /// <summary>True for an IPv6 link-local unicast address, fe80::/10 (RFC 4291 2.5.6).</summary>
    public bool IsIpv6LinkLocal => _high >> 54 == 0xfe80 >> 6;

    /// <summary>True for a solicited-node multicast address, ff02::1:ff00:0/104 (RFC 4291 2.7.1).</summary>
    public bool IsSolicitedNodeMulticast => _high == 0xff02_0000_0000_0000UL && _low >> 24 == 0x0000_0001_ff;

    /// <summary>The solicited-node multicast address of this IPv6 address: ff02::1:ff and its low 24 bits (RFC 4291 2.7.1).</summary>
    public IpAddr SolicitedNodeMulticast => new(0xff02_0000_0000_0000UL, 0x0000_0001_ff00_0000UL | (_low & 0xff_ffff));

    /// <summary>The low 32 bits, which an IPv6 multicast address maps to its Ethernet group (RFC 2464 7); an IPv4 address's value.</summary>
    public uint Low32 => (uint)_low;

    /// <summary>The address of the host-order IPv4 number <paramref name="address"/>.</summary>
    public static IpAddr FromIpv4(uint address) => new(0, MappedPrefix | address);

    /// <summary>The IPv6 address in the 16 bytes of <paramref name="address"/> (network order).</summary>
    public static IpAddr FromIpv6(ReadOnlySpan<byte> address) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(address), BinaryPrimitives.ReadUInt64BigEndian(address[8..16]));

    /// <summary>The value of an <see cref="IPAddress"/> of either family (an IPv4-mapped IPv6 address becomes IPv4).</summary>
    public static IpAddr FromAddress(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes, out _);
            return FromIpv4(BinaryPrimitives.ReadUInt32BigEndian(bytes));
        }

        address.TryWriteBytes(bytes, out _);
        return FromIpv6(bytes);
    }

    /// <summary>Writes the address in network order: 4 bytes for IPv4, else 16. Returns the count written.</summary>
    public int WriteTo(Span<byte> destination)
    {
        if (IsIpv4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)_low);
            return 4;
        }

        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..16], _low);
        return 16;
    }

    /// <summary>Writes the 16 bytes of the IPv6 form (an IPv4 address as ::ffff:a.b.c.d).</summary>
    public void WriteIpv6To(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, _high);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..16], _low);
    }

    /// <summary>The address as an <see cref="IPAddress"/> (allocates).</summary>
    public IPAddress ToIPAddress()
    {
        Span<byte> bytes = stackalloc byte[16];
        return new IPAddress(bytes[..WriteTo(bytes)]);
    }

    /// <summary>The address whose IPv6 form is the big-endian numbers <paramref name="high"/> (bytes 0-7) and <paramref name="low"/> (bytes 8-15).</summary>
    internal static IpAddr FromParts(ulong high, ulong low) => new(high, low);

    /// <summary>Bytes 0-7 of the IPv6 form as a big-endian number (0 for IPv4).</summary>
    internal ulong High => _high;

    /// <summary>Bytes 8-15 of the IPv6 form as a big-endian number (0x0000FFFF_xxxxxxxx for IPv4).</summary>
    internal ulong Low => _low;

    /// <inheritdoc/>
    public bool Equals(IpAddr other) => _low == other._low && _high == other._high;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is IpAddr other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => (int)_low ^ (int)(_low >> 32) ^ (int)_high ^ (int)(_high >> 32);

    /// <summary>Dotted form for IPv4, RFC 5952 text for IPv6.</summary>
    public override string ToString() => IsIpv4 ? Ip.Format((uint)_low) : ToIPAddress().ToString();

    /// <summary>Equality.</summary>
    public static bool operator ==(IpAddr left, IpAddr right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(IpAddr left, IpAddr right) => !left.Equals(right);
}
