using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace NetWire.Cli.Commands;

/// <summary>
/// The value of <c>--outbound-addr</c> and <c>--outbound-addr6</c> (the gateway's and
/// <c>netwire slirp4netns</c>'s): an address of this host, or the name of an interface, which
/// stands for its first address of the family as slirp4netns 1.2 takes it (for IPv6 its first one
/// outside fe80::/10, since a link-local source reaches no outside destination). The value is
/// resolved once, at startup (docs/gateway.md, "Outbound address").
/// </summary>
internal static class OutboundAddressOption
{
    /// <summary>One interface's name and addresses, as the host lists them.</summary>
    internal readonly record struct HostInterface(string Name, IReadOnlyList<IPAddress> Addresses);

    /// <summary>Resolves <paramref name="text"/> against this host's interfaces; throws <see cref="FormatException"/> with the reason.</summary>
    public static IPAddress Resolve(string text, AddressFamily family, string option) =>
        Resolve(text, family, option, HostInterfaces());

    /// <summary>Resolves <paramref name="text"/> against <paramref name="interfaces"/>; throws <see cref="FormatException"/> with the reason.</summary>
    internal static IPAddress Resolve(string text, AddressFamily family, string option, IReadOnlyList<HostInterface> interfaces)
    {
        var familyName = family == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";
        if (IPAddress.TryParse(text, out var address) && text.Contains(family == AddressFamily.InterNetworkV6 ? ':' : '.', StringComparison.Ordinal))
        {
            if (address.AddressFamily != family)
            {
                throw new FormatException($"{option} '{text}' is not an {familyName} address");
            }

            if (address.IsIPv6LinkLocal)
            {
                throw new FormatException($"{option} '{text}': a link-local address reaches no outside destination");
            }

            if (!interfaces.Any(i => i.Addresses.Contains(address)))
            {
                throw new FormatException($"{option} '{text}' is not an address of this host");
            }

            return address;
        }

        if (IPAddress.TryParse(text, out _))
        {
            throw new FormatException($"{option} '{text}' is not an {familyName} address");
        }

        var named = interfaces.Where(i => i.Name == text).ToArray();
        if (named.Length == 0)
        {
            throw new FormatException($"{option} '{text}' is neither an {familyName} address nor the name of an interface");
        }

        return named.SelectMany(i => i.Addresses).FirstOrDefault(a => a.AddressFamily == family && !a.IsIPv6LinkLocal)
            ?? throw new FormatException($"{option} '{text}': the interface has no {familyName} address{(family == AddressFamily.InterNetworkV6 ? " outside fe80::/10" : "")}");
    }

    private static HostInterface[] HostInterfaces()
    {
        try
        {
            return [.. NetworkInterface.GetAllNetworkInterfaces().Select(i => new HostInterface(i.Name, [.. i.GetIPProperties().UnicastAddresses.Select(a => ScopeFree(a.Address))]))];
        }
        catch (NetworkInformationException ex)
        {
            throw new FormatException($"cannot list this host's interfaces: {ex.Message}", ex);
        }
    }

    /// <summary>The address without its scope id, so that it compares equal to a parsed one.</summary>
    private static IPAddress ScopeFree(IPAddress address) =>
        address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0 ? new IPAddress(address.GetAddressBytes()) : address;
}
