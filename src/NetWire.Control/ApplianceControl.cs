using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Control.Commands;
using NetWire.Control.Migration;
using NetWire.Control.Qmp;
using NetWire.Core.State;
using NetWire.Core.Wire;
using NetWire.Spice;

namespace NetWire.Control;

/// <summary>
/// The appliance's control socket: a <see cref="QmpServer"/> with the commands that exist
/// today (<c>query-commands</c>, <c>query-spice</c>, <c>set_password</c>,
/// <c>expire_password</c>, <c>query-wire</c>, <c>quit</c>), the gateway's host forwards
/// (<c>hostfwd-add</c>, <c>hostfwd-remove</c>, <c>query-hostfwd</c>), the migration commands
/// (<c>client_migrate_info</c>, <c>migrate</c>, <c>migrate_cancel</c>, <c>query-migrate</c>,
/// <c>query-migrate-client-state</c>) and the SPICE and migration events.
/// </summary>
internal sealed class ApplianceControl : IAsyncDisposable
{
    private readonly QmpServer _server;

    /// <param name="quit">Called by <c>quit</c> after its reply is queued; it should stop the appliance.</param>
    /// <param name="state">The appliance state <c>migrate</c> sends; the SPICE server's section is registered in it.</param>
    /// <param name="incoming">On a target (<c>--incoming</c>), for its MIGRATION events.</param>
    /// <param name="migrationTls">Mutual TLS for <c>migrate</c> (<c>--migration-x509-dir</c>), or null.</param>
    /// <param name="forwards">The gateway's host forwards, when the appliance runs the gateway.</param>
    public ApplianceControl(
        ControlEndpoint endpoint,
        SpiceServer? spice,
        Func<IReadOnlyList<WireEnd>> wireEnds,
        Action quit,
        ILoggerFactory loggers,
        QmpServerOptions? options = null,
        StateRegistry? state = null,
        IncomingMigration? incoming = null,
        MigrationTls? migrationTls = null,
        Func<IHostForwardTable?>? forwards = null)
    {
        options ??= new QmpServerOptions();
        var table = new QmpCommandTable();
        table.Add("query-commands", [], _ => QueryCommands(table));
        // The stop path flushes queued output, so the client still reads quit's reply.
        table.Add("quit", [], static _ => null, afterReply: quit);
        WireCommands.Add(table, wireEnds);
        ForwardCommands.Add(table, forwards ?? (static () => null));
        state ??= new StateRegistry();
        if (spice is not null)
        {
            SpiceCommands.Add(table, spice, options.Time);
            if (!state.Sections.Any(s => s.Name == spice.StateSection.Name))
            {
                state.Register(spice.StateSection);
            }
        }

        Migration = new MigrationSource(spice, state, loggers.CreateLogger<MigrationSource>(), options.Time, migrationTls);
        MigrationCommands.Add(table, Migration, spice, incoming);
        _server = new QmpServer(endpoint, table, options, loggers.CreateLogger<QmpServer>());
        Migration.Events = _server.Emit;
        if (incoming is not null)
        {
            incoming.Events = _server.Emit;
        }

        if (spice is not null)
        {
            SpiceCommands.AttachEvents(spice, _server);
            MigrationCommands.AttachEvents(spice, _server);
        }
    }

    public QmpServer Server => _server;

    /// <summary>The source side of <c>migrate</c>.</summary>
    public MigrationSource Migration { get; }

    public EndPoint LocalEndPoint => _server.LocalEndPoint;

    /// <inheritdoc cref="QmpServer.Start"/>
    public void Start() => _server.Start();

    public Task StopAsync() => _server.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await Migration.DisposeAsync().ConfigureAwait(false);
        await _server.DisposeAsync().ConfigureAwait(false);
    }

    private static JsonArray QueryCommands(QmpCommandTable table)
    {
        var list = new JsonArray { new JsonObject { ["name"] = "qmp_capabilities" } };
        foreach (var name in table.Names.Order(StringComparer.Ordinal))
        {
            list.Add(new JsonObject { ["name"] = name });
        }

        return list;
    }
}
