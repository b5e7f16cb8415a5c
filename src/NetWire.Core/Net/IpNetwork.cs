using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace NetWire.Core.Net;

/// <summary>
/// An IPv4 or IPv6 network such as 10.0.0.0/8 or fd00::/64, as written on the command line
/// (<c>--allow</c>, <c>--deny</c>, <c>--net6</c>). The prefix length counts in the address's own
/// family (0-32 for IPv4, 0-128 for IPv6); a network contains only addresses of its family, so
/// <c>::/0</c> is every IPv6 address and no IPv4 one.
/// </summary>
public readonly record struct IpNetwork
{
    private IpNetwork(IpAddr network, int prefixLength)
    {
        Network = network;
        PrefixLength = prefixLength;
    }

    /// <summary>The network's first address (the given address with the host bits cleared).</summary>
    public IpAddr Network { get; }

    /// <summary>The prefix length in the family's own bits.</summary>
    public int PrefixLength { get; }

    /// <summary>True for an IPv4 network.</summary>
    public bool IsIpv4 => Network.IsIpv4;

    /// <summary>The network of <paramref name="address"/> with <paramref name="prefixLength"/> bits (0-32 for IPv4, 0-128 for IPv6).</summary>
    public static IpNetwork Create(IpAddr address, int prefixLength)
    {
        var max = address.IsIpv4 ? 32 : 128;
        ArgumentOutOfRangeException.ThrowIfNegative(prefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(prefixLength, max);
        var bits = WideBits(address, prefixLength);
        return new IpNetwork(Mask(address, bits), prefixLength);
    }

    /// <summary>True when <paramref name="address"/> is of this network's family and lies in it.</summary>
    public bool Contains(IpAddr address) =>
        address.IsIpv4 == Network.IsIpv4 && Mask(address, WideBits(address, PrefixLength)) == Network;

    /// <summary>The address <paramref name="host"/> into the network (fd00::/64 and 0x100 give fd00::100); the host part must fit the prefix.</summary>
    public IpAddr HostAt(ulong host)
    {
        var bits = WideBits(Network, PrefixLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(bits, 64);
        ArgumentOutOfRangeException.ThrowIfNotEqual(bits == 64 ? 0UL : host >> (128 - bits), 0UL, nameof(host));
        return IpAddr.FromParts(Network.High, Network.Low | host);
    }

    /// <summary>Parses A.B.C.D/N or an IPv6 address /N (a bare address is a single host); throws <see cref="FormatException"/>.</summary>
    public static IpNetwork Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text : text[..slash];
        // Whole dotted quads only (IPAddress also reads "10.0.0" and "10"), and no IPv6 scope.
        if (!IPAddress.TryParse(addressText, out var parsed)
            || (parsed.AddressFamily == AddressFamily.InterNetwork ? addressText.Count('.') != 3 : parsed.ScopeId != 0))
        {
            throw new FormatException($"'{text}' is not a network (A.B.C.D/N or IPv6/N)");
        }

        var address = IpAddr.FromAddress(parsed);
        var max = address.IsIpv4 ? 32 : 128;
        var prefix = max;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > max))
        {
            throw new FormatException($"'{text}': the prefix length must be 0 to {max}");
        }

        return Create(address, prefix);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Network}/{PrefixLength}";

    /// <summary>The prefix in bits of the 128-bit form an <see cref="IpAddr"/> holds (an IPv4 address sits in the low 32).</summary>
    private static int WideBits(IpAddr address, int prefixLength) => address.IsIpv4 ? 96 + prefixLength : prefixLength;

    private static IpAddr Mask(IpAddr address, int bits)
    {
        var high = bits >= 64 ? address.High : bits == 0 ? 0 : address.High & (ulong.MaxValue << (64 - bits));
        var low = bits <= 64 ? 0 : bits == 128 ? address.Low : address.Low & (ulong.MaxValue << (128 - bits));
        return IpAddr.FromParts(high, low);
    }
}
