using System.Globalization;
using System.Net;

namespace NetWire.Stack.Nat;

/// <summary>Which transport a forward or flow uses.</summary>
public enum Transport
{
    /// <summary>TCP.</summary>
    Tcp,

    /// <summary>UDP.</summary>
    Udp,
}

/// <summary>
/// A host port forwarded to the guest (slirp's hostfwd): <c>tcp:[ADDR:]HOST_PORT:GUEST_PORT</c>
/// or <c>udp:...</c>. ADDR defaults to 127.0.0.1, so a forward is not opened to the network unless
/// asked; an IPv6 ADDR is written in brackets (<c>tcp:[::1]:8080:80</c>) and reaches the guest
/// over IPv6, at its first IPv6 address.
/// </summary>
public sealed record HostForward(Transport Transport, IPEndPoint Listen, ushort GuestPort)
{
    /// <summary>The forms <see cref="Parse"/> accepts.</summary>
    public const string Forms = "tcp:[ADDR:]HOST_PORT:GUEST_PORT | udp:[ADDR:]HOST_PORT:GUEST_PORT (an IPv6 ADDR in brackets: tcp:[::1]:8080:80)";

    /// <summary>Parses a forward; throws <see cref="FormatException"/>.</summary>
    public static HostForward Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        var transport = colon < 0 ? "" : text[..colon];
        if (transport is not ("tcp" or "udp"))
        {
            throw new FormatException($"bad forward '{text}': expected {Forms}");
        }

        var rest = text[(colon + 1)..];
        var address = IPAddress.Loopback;
        if (rest.StartsWith('['))
        {
            var close = rest.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0 || !IPAddress.TryParse(rest[1..close], out address!) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                throw new FormatException($"bad forward '{text}': expected [IPv6-ADDRESS]:HOST_PORT:GUEST_PORT after '{transport}:'");
            }

            rest = rest[(close + 2)..];
            if (rest.Split(':').Length != 2)
            {
                throw new FormatException($"bad forward '{text}': expected {Forms}");
            }
        }

        var parts = rest.Split(':');
        if (parts.Length is not (2 or 3))
        {
            throw new FormatException($"bad forward '{text}': expected {Forms}");
        }

        if (parts.Length == 3 && (!IPAddress.TryParse(parts[0], out address!) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork))
        {
            throw new FormatException($"bad forward '{text}': '{parts[0]}' is not an IPv4 address (write an IPv6 one in brackets)");
        }

        var hostPort = ParsePort(parts[^2], text);
        var guestPort = ParsePort(parts[^1], text);
        if (guestPort == 0)
        {
            throw new FormatException($"bad forward '{text}': the guest port must not be 0");
        }

        return new HostForward(transport == "tcp" ? Transport.Tcp : Transport.Udp, new IPEndPoint(address, hostPort), guestPort);
    }

    private static ushort ParsePort(string text, string whole)
    {
        if (!ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            throw new FormatException($"bad forward '{whole}': '{text}' is not a port (0-65535)");
        }

        return port;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Transport.ToString().ToLowerInvariant()}:{Listen}->guest:{GuestPort}";
}
