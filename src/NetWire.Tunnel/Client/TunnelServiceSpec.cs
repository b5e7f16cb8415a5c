using System.Globalization;

namespace NetWire.Tunnel.Client;

/// <summary>
/// One <c>--service NAME=TARGET_HOST:TARGET_PORT[,port=GUEST_PORT][,print]</c>: a TCP service
/// the client can reach, published to the guest on port GUEST_PORT (default TARGET_PORT) of
/// a virtual IP. <c>print</c> makes it an IPP service.
/// </summary>
internal sealed record TunnelServiceSpec(string Name, string TargetHost, ushort TargetPort, ushort GuestPort, bool Print)
{
    /// <summary>Parses a spec; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static TunnelServiceSpec Parse(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            throw new FormatException($"--service '{text}': expected NAME=HOST:PORT[,port=GUEST_PORT][,print]");
        }

        var name = text[..equals];
        if (System.Text.Encoding.UTF8.GetByteCount(name) > TunnelMessages.MaxStringBytes || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new FormatException($"--service '{text}': the name must be at most {TunnelMessages.MaxStringBytes} bytes");
        }

        var parts = text[(equals + 1)..].Split(',');
        var target = parts[0];
        var colon = target.LastIndexOf(':');
        if (colon <= 0 || !TryPort(target[(colon + 1)..], out var targetPort))
        {
            throw new FormatException($"--service '{text}': '{target}' is not HOST:PORT");
        }

        var host = target[..colon].Trim('[', ']');
        var guestPort = targetPort;
        var print = false;
        foreach (var option in parts.AsSpan(1))
        {
            if (option == "print")
            {
                print = true;
            }
            else if (option.StartsWith("port=", StringComparison.Ordinal) && TryPort(option[5..], out var port))
            {
                guestPort = port;
            }
            else
            {
                throw new FormatException($"--service '{text}': unknown option '{option}' (port=N, print)");
            }
        }

        return new TunnelServiceSpec(name, host, targetPort, guestPort, print);
    }

    private static bool TryPort(string text, out ushort port) =>
        ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out port) && port != 0;
}
