using System.Globalization;
using System.Net;

namespace NetWire.Core.Net;

/// <summary>An IPv4 network such as 10.0.2.0/24, as written on the command line.</summary>
public readonly record struct Ipv4Cidr(uint Address, int PrefixLength)
{
    /// <summary>The netmask as a number (/24 is 0xFFFFFF00).</summary>
    public uint Mask => PrefixLength == 0 ? 0 : uint.MaxValue << (32 - PrefixLength);

    /// <summary>The network's first address.</summary>
    public uint Network => Address & Mask;

    /// <summary>The directed broadcast address.</summary>
    public uint Broadcast => Network | ~Mask;

    /// <summary>True when <paramref name="address"/> lies in this network.</summary>
    public bool Contains(uint address) => (address & Mask) == Network;

    /// <summary>Parses A.B.C.D/N (a bare address is /32); throws <see cref="FormatException"/>.</summary>
    public static Ipv4Cidr Parse(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        var addressText = slash < 0 ? text : text[..slash];
        var prefix = 32;
        if (slash >= 0 && (!int.TryParse(text[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out prefix) || prefix > 32))
        {
            throw new FormatException($"'{text}': the prefix length must be 0 to 32");
        }

        if (!IPAddress.TryParse(addressText, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            throw new FormatException($"'{text}' is not an IPv4 network (A.B.C.D/N)");
        }

        return new Ipv4Cidr(Ip.ToUInt(address), prefix);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Ip.Format(Network)}/{PrefixLength}";
}
