using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using NetWire.Control.Qmp;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Control.Commands;

/// <summary>
/// QMP commands and events of the SPICE server: <c>query-spice</c>, <c>set_password</c>,
/// <c>expire_password</c>, and SPICE_CONNECTED / _INITIALIZED / _DISCONNECTED. Shapes follow
/// QEMU's QAPI schema (ui.json) where NetWire has the data.
/// </summary>
internal static class SpiceCommands
{
    private static readonly QmpParameter[] s_setPassword =
    [
        new("protocol", QmpType.String),
        new("password", QmpType.String),
        new("connected", QmpType.String, Optional: true),
        new("display", QmpType.String, Optional: true),
    ];

    private static readonly QmpParameter[] s_expirePassword =
    [
        new("protocol", QmpType.String),
        new("time", QmpType.String),
        new("display", QmpType.String, Optional: true),
    ];

    public static void Add(QmpCommandTable table, SpiceServer spice, TimeProvider time)
    {
        table.Add("query-spice", [], _ => QuerySpice(spice));
        table.Add("set_password", s_setPassword, (arguments, _) => SetPasswordAsync(spice, arguments));
        table.Add("expire_password", s_expirePassword, arguments =>
        {
            RequireSpice(arguments);
            spice.Tickets.ExpirePassword(ParseExpiry(arguments.GetString("time")!, time.GetUtcNow()));
            return null;
        });
    }

    /// <summary>Forwards the SPICE server's channel lifecycle to QMP events (set before the SPICE server starts).</summary>
    public static void AttachEvents(SpiceServer spice, QmpServer qmp) =>
        spice.ChannelEvents = e => qmp.Emit(EventName(e.Kind), EventData(e, spice.Tickets.TicketingDisabled));

    /// <summary>QEMU's expire_password forms: "now", "never", "+SECONDS", "SECONDS" since the epoch.</summary>
    /// <exception cref="FormatException">Any other text.</exception>
    public static DateTimeOffset? ParseExpiry(string text, DateTimeOffset now)
    {
        if (text == "never")
        {
            return null;
        }

        if (text == "now")
        {
            return now;
        }

        if (text.StartsWith('+') && long.TryParse(text.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var relative) && relative <= int.MaxValue)
        {
            return now.AddSeconds(relative);
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var absolute) && absolute <= int.MaxValue)
        {
            return DateTimeOffset.FromUnixTimeSeconds(absolute);
        }

        throw new FormatException($"Parameter 'time' does not accept value '{text}': use now, never, +SECONDS or SECONDS since the epoch");
    }

    private static JsonObject QuerySpice(SpiceServer spice)
    {
        var channels = new JsonArray();
        foreach (var channel in spice.LinkedChannels)
        {
            var info = BasicInfo(channel.Client);
            info["connection-id"] = channel.ConnectionId;
            info["channel-type"] = (int)channel.ChannelType;
            info["channel-id"] = (int)channel.ChannelId;
            info["tls"] = channel.Tls;
            channels.Add(info);
        }

        var reply = new JsonObject
        {
            ["enabled"] = true,
            ["migrated"] = false,
            ["host"] = (spice.PlainEndPoint ?? spice.TlsEndPoint)?.Address.ToString(),
        };
        if (spice.PlainEndPoint is { } plain)
        {
            reply["port"] = plain.Port;
        }

        if (spice.TlsEndPoint is { } secure)
        {
            reply["tls-port"] = secure.Port;
        }

        reply["auth"] = spice.Tickets.TicketingDisabled ? "none" : "spice";
        reply["compiled-version"] = "netwire";
        reply["mouse-mode"] = "server";
        reply["channels"] = channels;

        // NetWire's own: the channel security policy and how links ended.
        var security = new JsonObject();
        foreach (var (name, transport) in spice.Options.ChannelSecurity.Describe())
        {
            security[name] = ChannelSecurity.Name(transport);
        }

        reply["channel-security"] = security;
        reply["links"] = Links(spice.Counters);
        return reply;
    }

    /// <summary>Link-stage outcomes and refusals by code, in QEMU's lower-case-with-dashes style.</summary>
    private static JsonObject Links(SpiceLinkCounters counters)
    {
        var links = new JsonObject();
        foreach (var outcome in Enum.GetValues<LinkOutcome>())
        {
            links[NetWire.Core.Naming.Words(outcome.ToString(), '-')] = counters.Of(outcome);
        }

        var refused = new JsonObject();
        foreach (var error in Enum.GetValues<SpiceLinkErr>())
        {
            if (error != SpiceLinkErr.Ok)
            {
                refused[NetWire.Core.Naming.Words(error.ToString(), '-')] = counters.Refused(error);
            }
        }

        links["refused"] = refused;
        return links;
    }

    private static async ValueTask<JsonNode?> SetPasswordAsync(SpiceServer spice, QmpArguments arguments)
    {
        RequireSpice(arguments);
        var connected = arguments.GetString("connected") ?? "keep";
        if (connected is not ("keep" or "fail" or "disconnect"))
        {
            throw QmpException.Generic($"Parameter 'connected' does not accept value '{connected}'");
        }

        var password = arguments.GetString("password")!;
        TicketAuthority.Encode(password);
        if (connected == "fail" && spice.Sessions.Count > 0)
        {
            throw QmpException.Generic("Could not set password: clients are connected and connected=fail");
        }

        spice.Tickets.SetPassword(password);
        if (connected == "disconnect")
        {
            var goodbyes = spice.Sessions.Snapshot().Select(s => s.DisconnectAsync(SpiceLinkErr.Ok, TimeSpan.FromSeconds(1)));
            await Task.WhenAll(goodbyes).ConfigureAwait(false);
        }

        return null;
    }

    private static void RequireSpice(QmpArguments arguments)
    {
        var protocol = arguments.GetString("protocol");
        if (protocol == "vnc")
        {
            throw QmpException.Generic("VNC is not served by NetWire; use protocol 'spice'");
        }

        if (protocol != "spice")
        {
            throw QmpException.Generic($"Parameter 'protocol' does not accept value '{protocol}'");
        }
    }

    private static string EventName(SpiceChannelEventKind kind) => kind switch
    {
        SpiceChannelEventKind.Connected => "SPICE_CONNECTED",
        SpiceChannelEventKind.Initialized => "SPICE_INITIALIZED",
        _ => "SPICE_DISCONNECTED",
    };

    private static JsonObject EventData(SpiceChannelEvent e, bool ticketingDisabled)
    {
        var server = BasicInfo(e.Server);
        var client = BasicInfo(e.Client);
        if (e.Kind == SpiceChannelEventKind.Initialized)
        {
            server["auth"] = ticketingDisabled ? "none" : "spice";
            client["connection-id"] = e.ConnectionId;
            client["channel-type"] = e.ChannelType;
            client["channel-id"] = e.ChannelId;
            client["tls"] = e.Tls;
        }

        return new JsonObject { ["server"] = server, ["client"] = client };
    }

    /// <summary>QEMU's SpiceBasicInfo: host, port (a string), family.</summary>
    private static JsonObject BasicInfo(EndPoint? endPoint)
    {
        if (endPoint is not IPEndPoint ip)
        {
            return new JsonObject { ["host"] = string.Empty, ["port"] = string.Empty, ["family"] = "unknown" };
        }

        var address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
        return new JsonObject
        {
            ["host"] = address.ToString(),
            ["port"] = ip.Port.ToString(CultureInfo.InvariantCulture),
            ["family"] = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "ipv6" : "ipv4",
        };
    }
}
