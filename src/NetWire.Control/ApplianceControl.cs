using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Control.Commands;
using NetWire.Control.Qmp;
using NetWire.Core.Wire;
using NetWire.Spice;

namespace NetWire.Control;

/// <summary>
/// The appliance's control socket: a <see cref="QmpServer"/> with the commands that exist
/// today (<c>query-commands</c>, <c>query-spice</c>, <c>set_password</c>,
/// <c>expire_password</c>, <c>query-wire</c>, <c>quit</c>) and the SPICE channel events.
/// Migration commands join here with the migration core.
/// </summary>
internal sealed class ApplianceControl : IAsyncDisposable
{
    private readonly QmpServer _server;

    /// <param name="quit">Called by <c>quit</c> after its reply is queued; it should stop the appliance.</param>
    public ApplianceControl(ControlEndpoint endpoint, SpiceServer? spice, Func<IReadOnlyList<WireEnd>> wireEnds, Action quit, ILoggerFactory loggers, QmpServerOptions? options = null)
    {
        options ??= new QmpServerOptions();
        var table = new QmpCommandTable();
        table.Add("query-commands", [], _ => QueryCommands(table));
        // The stop path flushes queued output, so the client still reads quit's reply.
        table.Add("quit", [], static _ => null, afterReply: quit);
        WireCommands.Add(table, wireEnds);
        if (spice is not null)
        {
            SpiceCommands.Add(table, spice, options.Time);
        }

        _server = new QmpServer(endpoint, table, options, loggers.CreateLogger<QmpServer>());
        if (spice is not null)
        {
            SpiceCommands.AttachEvents(spice, _server);
        }
    }

    public QmpServer Server => _server;

    public EndPoint LocalEndPoint => _server.LocalEndPoint;

    /// <inheritdoc cref="QmpServer.Start"/>
    public void Start() => _server.Start();

    public Task StopAsync() => _server.StopAsync();

    public ValueTask DisposeAsync() => _server.DisposeAsync();

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
