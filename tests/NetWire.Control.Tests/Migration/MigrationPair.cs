using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control.Migration;
using NetWire.Control.Qmp;
using NetWire.Core.State;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// One in-process appliance: a SPICE server on 127.0.0.1 and a free port (password
/// <see cref="Password"/>), its control socket, and, for a target, the incoming migration
/// listener on 127.0.0.1 and a free port.
/// </summary>
internal sealed class Appliance : IAsyncDisposable
{
    public const string Password = "s3cret";

    private readonly string _directory;

    private Appliance(string directory, SpiceServer spice, ApplianceControl control, ControlEndpoint endpoint, IncomingMigration? incoming, StateRegistry state)
    {
        _directory = directory;
        Spice = spice;
        Control = control;
        Endpoint = endpoint;
        Incoming = incoming;
        State = state;
    }

    public SpiceServer Spice { get; }

    public ApplianceControl Control { get; }

    public ControlEndpoint Endpoint { get; }

    public IncomingMigration? Incoming { get; }

    public StateRegistry State { get; }

    public int SpicePort => Spice.LocalEndPoint.Port;

    /// <summary>The target's <c>tcp:127.0.0.1:PORT</c> for <c>migrate</c>.</summary>
    public string IncomingUri => $"tcp:127.0.0.1:{Incoming!.LocalEndPoint.Port}";

    /// <param name="incoming">Start as a migration target (<c>--incoming</c>).</param>
    /// <param name="configure">Adjusts the SPICE options (timers, test channels) before start.</param>
    /// <param name="migrationTls">Mutual TLS for the state stream (<c>--migration-x509-dir</c>).</param>
    public static Appliance Start(bool incoming = false, Action<SpiceServerOptions>? configure = null, string password = Password, MigrationTls? migrationTls = null)
    {
        var directory = Directory.CreateTempSubdirectory("netwire-mig-").FullName;
        var tickets = new TicketAuthority(TimeProvider.System);
        tickets.SetPassword(password);
        var options = new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) };
        configure?.Invoke(options);
        var spice = new SpiceServer(options, tickets, NullLoggerFactory.Instance);
        var state = new StateRegistry();
        var target = incoming ? new IncomingMigration(new IPEndPoint(IPAddress.Loopback, 0), state, spice, NullLogger.Instance, migrationTls?.Accept) : null;
        var endpoint = ControlEndpoint.Parse("unix:" + Path.Combine(directory, "qmp.sock"));
        var control = new ApplianceControl(endpoint, spice, static () => [], static () => { }, NullLoggerFactory.Instance, new QmpServerOptions(), state, target, migrationTls);
        spice.Start();
        target?.Start();
        control.Start();
        return new Appliance(directory, spice, control, endpoint, target, state);
    }

    /// <summary>A QMP client past <c>qmp_capabilities</c>.</summary>
    public async Task<QmpClient> QmpAsync()
    {
        var client = await QmpClient.ConnectAsync(Endpoint, TestContext.Current.CancellationToken);
        Reply.Ok(await client.NegotiateAsync(TestContext.Current.CancellationToken));
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await Control.DisposeAsync();
        if (Incoming is not null)
        {
            await Incoming.DisposeAsync();
        }

        await Spice.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>QMP helpers for the migration tests.</summary>
internal static class Qmp
{
    public static CancellationToken Token => TestContext.Current.CancellationToken;

    public static async Task<JsonNode> OkAsync(this QmpClient client, string command, JsonObject? arguments = null) =>
        Reply.Ok(await client.ExecuteAsync(command, arguments, Token));

    public static Task<JsonNode> ClientMigrateInfoAsync(this QmpClient client, int port, string host = "127.0.0.1") =>
        client.OkAsync("client_migrate_info", new JsonObject { ["protocol"] = "spice", ["hostname"] = host, ["port"] = port });

    public static async Task<int> ClientStateAsync(this QmpClient client) =>
        (int)(await client.OkAsync("query-migrate-client-state"))["state"]!;

    /// <summary>Polls query-migrate until the status is final; returns the last reply.</summary>
    public static async Task<JsonObject> WaitMigrationEndAsync(this QmpClient client, TimeSpan? timeout = null)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Token);
        limit.CancelAfter(timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var reply = (JsonObject)await client.OkAsync("query-migrate");
            if ((string?)reply["status"] is "completed" or "failed" or "cancelled")
            {
                return reply;
            }

            await Task.Delay(50, limit.Token);
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds (polling, generous limit).</summary>
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Token);
        limit.CancelAfter(timeout ?? TimeSpan.FromSeconds(60));
        while (!condition())
        {
            try
            {
                await Task.Delay(25, limit.Token);
            }
            catch (OperationCanceledException) when (!Token.IsCancellationRequested)
            {
                Assert.Fail($"timed out waiting for {what}");
            }
        }
    }
}
