using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Pcap;
using NetWire.Devices.Qemu;
using NetWire.Devices.Tap;

namespace NetWire.Devices;

/// <summary>Which side of the appliance a spec may name.</summary>
public enum WireSide
{
    /// <summary>Where a guest NIC attaches (QEMU socket backends, or a TAP).</summary>
    Guest,

    /// <summary>Where guest frames leave for the host (TAP, libpcap).</summary>
    Host,
}

/// <summary>
/// A parsed wire-end spec as users write it on the command line:
/// <code>
/// guest: stream:unix:PATH[,connect] | stream:tcp:HOST:PORT[,connect]
///        dgram:udp:LOCAL_HOST:LOCAL_PORT=REMOTE_HOST:REMOTE_PORT | dgram:unix:LOCAL=REMOTE
///        tap:NAME (a namespace or VM on a TAP, as `netwire run` attaches one)
/// host:  tap:NAME | pcap:IFACE[,filter=BPF]
/// </code>
/// </summary>
public sealed record WireSpec
{
    /// <summary>The forms a guest spec takes, for error messages and help.</summary>
    public const string GuestForms = "stream:unix:PATH[,connect] | stream:tcp:HOST:PORT[,connect] | dgram:udp:LHOST:LPORT=RHOST:RPORT | dgram:unix:LOCAL=REMOTE | tap:NAME";

    /// <summary>The forms a host spec takes.</summary>
    public const string HostForms = "tap:NAME | pcap:IFACE[,filter=BPF]";

    private WireSpec(string text, string kind)
    {
        Text = text;
        Kind = kind;
    }

    /// <summary>The spec as written.</summary>
    public string Text { get; }

    /// <summary>stream, dgram, tap or pcap.</summary>
    public string Kind { get; }

    /// <summary>Stream: where to listen or connect. Dgram: the local address.</summary>
    public EndPoint? EndPoint { get; private init; }

    /// <summary>Dgram: QEMU's address.</summary>
    public EndPoint? Remote { get; private init; }

    /// <summary>Stream: connect instead of listen.</summary>
    public bool Connect { get; private init; }

    /// <summary>TAP or pcap interface name.</summary>
    public string? Interface { get; private init; }

    /// <summary>pcap: the BPF filter.</summary>
    public string? Filter { get; private init; }

    /// <summary>Parses <paramref name="text"/> for <paramref name="side"/>; throws <see cref="FormatException"/> with the valid forms.</summary>
    public static WireSpec Parse(string text, WireSide side)
    {
        var forms = side == WireSide.Guest ? GuestForms : HostForms;
        FormatException Bad(string why) => new($"bad {side.ToString().ToLowerInvariant()} spec '{text}': {why}; expected {forms}");

        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
        {
            throw Bad("missing kind");
        }

        var kind = text[..colon];
        var rest = text[(colon + 1)..];
        switch (side, kind)
        {
            case (WireSide.Guest, "stream"):
            {
                var connect = false;
                if (rest.EndsWith(",connect", StringComparison.Ordinal))
                {
                    connect = true;
                    rest = rest[..^",connect".Length];
                }

                return new WireSpec(text, kind) { EndPoint = ParseStreamAddress(rest, Bad), Connect = connect };
            }

            case (WireSide.Guest, "dgram"):
            {
                var eq = rest.IndexOf('=', StringComparison.Ordinal);
                if (!rest.StartsWith("udp:", StringComparison.Ordinal) && !rest.StartsWith("unix:", StringComparison.Ordinal))
                {
                    throw Bad("dgram takes udp: or unix:");
                }

                var unix = rest.StartsWith("unix:", StringComparison.Ordinal);
                rest = rest[(unix ? 5 : 4)..];
                eq = rest.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0 || eq == rest.Length - 1)
                {
                    throw Bad("dgram needs LOCAL=REMOTE");
                }

                var local = rest[..eq];
                var remote = rest[(eq + 1)..];
                return unix
                    ? new WireSpec(text, kind) { EndPoint = new UnixDomainSocketEndPoint(local), Remote = new UnixDomainSocketEndPoint(remote) }
                    : new WireSpec(text, kind) { EndPoint = ParseHostPort(local, Bad), Remote = ParseHostPort(remote, Bad) };
            }

            case (_, "tap"):
                if (rest.Length is 0 or > TunTap.MaxNameLength || rest.Contains('/') || rest.Contains(','))
                {
                    throw Bad($"a TAP name is 1 to {TunTap.MaxNameLength} characters");
                }

                return new WireSpec(text, kind) { Interface = rest };

            case (WireSide.Host, "pcap"):
            {
                string? filter = null;
                var comma = rest.IndexOf(",filter=", StringComparison.Ordinal);
                if (comma >= 0)
                {
                    filter = rest[(comma + ",filter=".Length)..];
                    rest = rest[..comma];
                    if (filter.Length == 0)
                    {
                        throw Bad("empty filter");
                    }
                }

                if (rest.Length == 0 || rest.Contains(','))
                {
                    throw Bad("missing interface name");
                }

                return new WireSpec(text, kind) { Interface = rest, Filter = filter };
            }

            default:
                throw Bad($"unknown kind '{kind}'");
        }
    }

    /// <summary>Builds the wire end this spec names.</summary>
    public WireEnd CreateEnd(string name, FramePool pool, int queueCapacity, ILoggerFactory loggers)
    {
        return Kind switch
        {
            "stream" => new QemuStreamEnd(name, EndPoint!, Connect, pool, queueCapacity, loggers.CreateLogger<QemuStreamEnd>()),
            "dgram" => new QemuDgramEnd(name, EndPoint!, Remote!, pool, queueCapacity, loggers.CreateLogger<QemuDgramEnd>()),
            "tap" => new TapEnd(name, Interface!, pool, queueCapacity, loggers.CreateLogger<TapEnd>()),
            "pcap" => new PcapLiveEnd(name, Interface!, Filter, pool, queueCapacity, loggers.CreateLogger<PcapLiveEnd>()),
            _ => throw new InvalidOperationException(Kind),
        };
    }

    private static EndPoint ParseStreamAddress(string rest, Func<string, FormatException> bad)
    {
        if (rest.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = rest[5..];
            if (path.Length == 0)
            {
                throw bad("empty unix path");
            }

            if (System.Text.Encoding.UTF8.GetByteCount(path) > 107)
            {
                throw bad("unix socket paths are at most 107 bytes");
            }

            return new UnixDomainSocketEndPoint(path);
        }

        if (rest.StartsWith("tcp:", StringComparison.Ordinal))
        {
            return ParseHostPort(rest[4..], bad);
        }

        throw bad("stream takes unix: or tcp:");
    }

    private static IPEndPoint ParseHostPort(string text, Func<string, FormatException> bad)
    {
        var colon = text.LastIndexOf(':');
        if (colon <= 0)
        {
            throw bad($"'{text}' is not HOST:PORT");
        }

        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw bad($"'{text[(colon + 1)..]}' is not a port (0-65535)");
        }

        if (host == "localhost")
        {
            return new IPEndPoint(IPAddress.Loopback, port);
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            throw bad($"'{host}' is not an IP address");
        }

        return new IPEndPoint(address, port);
    }
}
