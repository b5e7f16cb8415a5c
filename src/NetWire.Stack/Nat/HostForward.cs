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
/// or <c>udp:...</c>. ADDR defaults to 127.0.0.1, so a forward is not opened to the network unless asked.
/// </summary>
public sealed record HostForward(Transport Transport, IPEndPoint Listen, ushort GuestPort)
{
    /// <summary>The forms <see cref="Parse"/> accepts.</summary>
    public const string Forms = "tcp:[ADDR:]HOST_PORT:GUEST_PORT | udp:[ADDR:]HOST_PORT:GUEST_PORT";

    /// <summary>Parses a forward; throws <see cref="FormatException"/>.</summary>
    public static HostForward Parse(string text)
    {
        var parts = text.Split(':');
        if (parts.Length is not (3 or 4) || parts[0] is not ("tcp" or "udp"))
        {
            throw new FormatException($"bad forward '{text}': expected {Forms}");
        }

        var address = IPAddress.Loopback;
        if (parts.Length == 4 && !IPAddress.TryParse(parts[1], out address!))
        {
            throw new FormatException($"bad forward '{text}': '{parts[1]}' is not an IP address");
        }

        var hostPort = ParsePort(parts[^2], text);
        var guestPort = ParsePort(parts[^1], text);
        if (guestPort == 0)
        {
            throw new FormatException($"bad forward '{text}': the guest port must not be 0");
        }

        return new HostForward(parts[0] == "tcp" ? Transport.Tcp : Transport.Udp, new IPEndPoint(address, hostPort), guestPort);
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
