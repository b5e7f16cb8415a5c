using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace NetWire.Control;

/// <summary>Where the control socket is: <c>unix:PATH</c> or <c>tcp:HOST:PORT</c> (QEMU's <c>-qmp</c> forms).</summary>
internal sealed record ControlEndpoint(EndPoint EndPoint, string Text)
{
    /// <summary>True for a unix socket (the path is removed at stop).</summary>
    public bool IsUnix => EndPoint is UnixDomainSocketEndPoint;

    /// <exception cref="FormatException">Not one of the two forms, or a bad address or port.</exception>
    public static ControlEndpoint Parse(string text)
    {
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = text["unix:".Length..];
            if (path.Length == 0)
            {
                throw new FormatException($"'{text}': unix: needs a path");
            }

            return new ControlEndpoint(new UnixDomainSocketEndPoint(path), text);
        }

        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            var rest = text["tcp:".Length..];
            var colon = rest.LastIndexOf(':');
            if (colon <= 0
                || !IPAddress.TryParse(rest[..colon].Trim('[', ']'), out var address)
                || !int.TryParse(rest.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
                || port > 65535)
            {
                throw new FormatException($"'{text}': use tcp:ADDRESS:PORT with an IP address");
            }

            return new ControlEndpoint(new IPEndPoint(address, port), text);
        }

        throw new FormatException($"'{text}': use unix:PATH or tcp:ADDRESS:PORT");
    }

    public override string ToString() => Text;
}
