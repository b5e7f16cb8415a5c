using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using NetWire.Control.Qmp;

namespace NetWire.Control.Commands;

/// <summary>
/// Host forwards of the user-mode gateway while the appliance runs: <c>hostfwd-add</c>,
/// <c>hostfwd-remove</c>, <c>query-hostfwd</c> (docs/control.md). A forward added here is the
/// same as one given with <c>--forward</c>; removing it closes its listener, and connections it
/// already carried go on.
/// </summary>
internal static class ForwardCommands
{
    private static readonly QmpParameter[] s_add =
    [
        new("protocol", QmpType.String, Optional: true),
        new("host-addr", QmpType.String, Optional: true),
        new("host-port", QmpType.Int),
        new("guest-port", QmpType.Int),
    ];

    private static readonly QmpParameter[] s_remove = [new("id", QmpType.Int)];

    /// <summary>Adds the commands; <paramref name="forwards"/> returns null when the appliance has no gateway (a TAP or pcap host end).</summary>
    public static void Add(QmpCommandTable table, Func<IHostForwardTable?> forwards)
    {
        table.Add("hostfwd-add", s_add, arguments => AddForward(Require(forwards), arguments));
        table.Add("hostfwd-remove", s_remove, arguments =>
        {
            var id = arguments.GetInt("id")!.Value;
            return id is > 0 and <= int.MaxValue && Require(forwards).Remove((int)id)
                ? null
                : throw QmpException.Generic($"No host forward with id {id.ToString(CultureInfo.InvariantCulture)}");
        });
        table.Add("query-hostfwd", [], _ => QueryForwards(Require(forwards)));
    }

    private static IHostForwardTable Require(Func<IHostForwardTable?> forwards) =>
        forwards() ?? throw QmpException.Generic("This appliance has no user-mode gateway (its host end is not the gateway)");

    private static JsonObject AddForward(IHostForwardTable forwards, QmpArguments arguments)
    {
        var protocol = arguments.GetString("protocol") ?? "tcp";
        if (protocol is not ("tcp" or "udp"))
        {
            throw QmpException.Generic($"Parameter 'protocol' expects 'tcp' or 'udp', not '{protocol}'");
        }

        var addressText = arguments.GetString("host-addr") ?? "127.0.0.1";
        if (!IPAddress.TryParse(addressText, out var address))
        {
            throw QmpException.Generic($"Parameter 'host-addr' expects an IPv4 or IPv6 address, not '{addressText}'");
        }

        var hostPort = arguments.GetInt("host-port")!.Value;
        var guestPort = arguments.GetInt("guest-port")!.Value;
        if (hostPort is < 0 or > 65535)
        {
            throw QmpException.Generic($"Parameter 'host-port' expects 0 to 65535, not {hostPort.ToString(CultureInfo.InvariantCulture)}");
        }

        if (guestPort is < 1 or > 65535)
        {
            throw QmpException.Generic($"Parameter 'guest-port' expects 1 to 65535, not {guestPort.ToString(CultureInfo.InvariantCulture)}");
        }

        try
        {
            return new JsonObject { ["id"] = forwards.Add(protocol, new IPEndPoint(address, (int)hostPort), (int)guestPort) };
        }
        catch (InvalidOperationException ex)
        {
            throw QmpException.Generic(ex.Message);
        }
    }

    private static JsonArray QueryForwards(IHostForwardTable forwards)
    {
        var list = new JsonArray();
        foreach (var forward in forwards.List())
        {
            list.Add(new JsonObject
            {
                ["id"] = forward.Id,
                ["protocol"] = forward.Protocol,
                ["host-addr"] = forward.Listen.Address.ToString(),
                ["host-port"] = forward.Listen.Port,
                ["guest-port"] = forward.GuestPort,
            });
        }

        return list;
    }
}
