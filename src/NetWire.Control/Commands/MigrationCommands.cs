using System.Text.Json.Nodes;
using NetWire.Control.Migration;
using NetWire.Control.Qmp;
using NetWire.Spice;
using NetWire.Spice.Migration;

namespace NetWire.Control.Commands;

/// <summary>
/// QMP migration commands and events: <c>client_migrate_info</c>, <c>migrate</c>,
/// <c>migrate_cancel</c>, <c>query-migrate</c>, <c>query-migrate-client-state</c>;
/// SPICE_MIGRATE_CONNECT_DONE (NetWire's: the connect phase ended), SPICE_MIGRATE_COMPLETED,
/// MIGRATION.
/// </summary>
internal static class MigrationCommands
{
    private static readonly QmpParameter[] s_clientMigrateInfo =
    [
        new("protocol", QmpType.String),
        new("hostname", QmpType.String),
        new("port", QmpType.Int, Optional: true),
        new("tls-port", QmpType.Int, Optional: true),
        new("cert-subject", QmpType.String, Optional: true),
    ];

    private static readonly QmpParameter[] s_migrate =
    [
        new("uri", QmpType.String),
        new("detach", QmpType.Bool, Optional: true),
        new("resume", QmpType.Bool, Optional: true),
    ];

    public static void Add(QmpCommandTable table, MigrationSource source, SpiceServer? spice, IncomingMigration? incoming = null)
    {
        table.Add("migrate", s_migrate, arguments =>
        {
            if (arguments.GetBool("resume") == true)
            {
                throw QmpException.Generic("Parameter 'resume': NetWire has no postcopy to resume");
            }

            source.Start(arguments.GetString("uri")!);
            return null;
        });
        table.Add("migrate_cancel", [], async (_, _) =>
        {
            await source.CancelAsync().ConfigureAwait(false);
            return null;
        });
        table.Add("query-migrate", [], _ =>
        {
            var reply = source.Query();
            if (incoming is not null)
            {
                // NetWire's own: what a target refused (QEMU's target shows only its status).
                reply["incoming"] = new JsonObject
                {
                    ["tls"] = incoming.RequiresTls,
                    ["refused"] = incoming.Refused,
                    ["tls-refused"] = incoming.TlsRefused,
                };
                if (incoming.Phases is { } phases)
                {
                    reply["incoming"]!["phases"] = phases;
                }
            }

            return reply;
        });
        if (spice is null)
        {
            return;
        }

        table.Add("client_migrate_info", s_clientMigrateInfo, arguments =>
        {
            var reply = ClientMigrateInfo(spice, arguments);
            source.Warm?.Invoke();
            return reply;
        });
        table.Add("query-migrate-client-state", [], _ =>
        {
            var state = spice.Migration.ClientState;
            return new JsonObject
            {
                ["state"] = state,
                ["name"] = state switch { 1 => "none", 2 => "waiting", _ => "ready" },
            };
        });
    }

    /// <summary>Forwards the SPICE migration's milestones to QMP events.</summary>
    public static void AttachEvents(SpiceServer spice, QmpServer qmp)
    {
        spice.Migration.ConnectCompleted = r => qmp.Emit("SPICE_MIGRATE_CONNECT_DONE", new JsonObject
        {
            ["connected"] = r.Connected,
            ["failed"] = r.Failed,
            ["timed-out"] = r.TimedOut,
            ["without-cap"] = r.WithoutCap,
            ["superseded"] = r.Superseded,
        });
        spice.Migration.EndCompleted = _ => qmp.Emit("SPICE_MIGRATE_COMPLETED", null);
    }

    private static JsonNode? ClientMigrateInfo(SpiceServer spice, QmpArguments arguments)
    {
        var protocol = arguments.GetString("protocol");
        if (protocol != "spice")
        {
            throw QmpException.Generic($"Parameter 'protocol' does not accept value '{protocol}'");
        }

        var port = arguments.GetInt("port") ?? -1;
        var tlsPort = arguments.GetInt("tls-port") ?? -1;
        if (port is < -1 or > 65534 || tlsPort is < -1 or > 65534)
        {
            throw QmpException.Generic("Parameters 'port' and 'tls-port' must be 0 to 65534, or -1 for none");
        }

        var destination = new MigrationDestination(arguments.GetString("hostname")!, (int)port, (int)tlsPort, arguments.GetString("cert-subject"));
        try
        {
            _ = spice.Migration.Connect(destination);
        }
        catch (ArgumentException ex)
        {
            throw QmpException.Generic($"client_migrate_info: {ex.Message}");
        }

        return null;
    }
}
