using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Control;
using NetWire.Core.State;
using NetWire.Spice;
using NetWire.Spice.Link;
using NetWire.Stack.Dhcp;
using NetWire.Stack.Migration;

namespace NetWire.Appliance;

/// <summary>What <c>netwire serve</c> runs, parsed and checked.</summary>
/// <param name="Wire">The wire; null with <c>--guest none</c> (SPICE only).</param>
/// <param name="Spice">The SPICE server's options; the tunnel channel is added to them when <see cref="Tunnel"/> is set.</param>
/// <param name="Tickets">The SPICE password and its expiry.</param>
internal sealed record ServeSetup(WireSetup? Wire, SpiceServerOptions Spice, TicketAuthority Tickets)
{
    /// <summary>The control socket (<c>--qmp</c>), or null.</summary>
    public ControlEndpoint? Control { get; init; }

    /// <summary>The <c>--incoming tcp:ADDRESS:PORT</c> of a migration target, or null.</summary>
    public string? Incoming { get; init; }

    /// <summary>Serve the SPICE tunnel channel (<c>--tunnel</c>); needs the user-mode gateway (<see cref="TunnelServe.Check"/>).</summary>
    public bool Tunnel { get; init; }

    /// <summary>Where Prometheus scrapes <c>/metrics</c> (<c>--metrics-addr</c>), or null.</summary>
    public System.Net.IPEndPoint? Metrics { get; init; }

    /// <summary>Mutual TLS for the migration stream (<c>--migration-x509-dir</c>), or null for plaintext.</summary>
    public NetWire.Control.Migration.MigrationTls? MigrationTls { get; init; }
}

/// <summary>
/// The appliance of <c>netwire serve</c>: its parts (<see cref="IServeComponent"/>) in start
/// order (the wire, the SPICE server, the incoming migration, the control socket, the metrics endpoint) and the
/// <see cref="StateRegistry"/> a migration carries (the gateway's DHCP leases, the wire's counters).
/// </summary>
/// <remarks>
/// <see cref="StartAsync"/> starts the parts in order and stops at the first that cannot start;
/// <see cref="RunAsync"/> waits until a part stops on its own or the caller stops the appliance;
/// <see cref="DisposeAsync"/> stops the started parts in reverse order, then disposes every part.
/// The control socket's <c>quit</c> cancels the <c>stop</c> source given to the constructor.
/// </remarks>
internal sealed class ServeAppliance : IAsyncDisposable
{
    private readonly List<IServeComponent> _components = [];
    private readonly List<IServeComponent> _started = [];
    private readonly SpiceServerOptions _spiceOptions;

    public ServeAppliance(ServeSetup setup, ILoggerFactory loggers, CancellationTokenSource stop)
    {
        _spiceOptions = setup.Spice;
        var wireSetup = setup.Wire;
        var tunnel = setup.Tunnel ? TunnelServe.Attach(ref wireSetup!, setup.Spice, loggers) : null;
        var wire = wireSetup is null ? null : new WireComponent(wireSetup, loggers);
        tunnel?.Bind(wire);
        Wire = wire;
        Spice = new SpiceServerComponent(setup.Spice, setup.Tickets, loggers);
        if (wire is not null)
        {
            _components.Add(wire);
        }

        _components.Add(Spice);
        State.Register(new DhcpStateSection(() => wire?.Gateway));
        var forwards = new ForwardStateSection(() => wire?.Gateway);
        State.Register(forwards);
        State.Register(new WireStateSection(() => wire?.Ends ?? [], loggers.CreateLogger("NetWire.Serve")));
        Flows = new GatewayFlowSection(() => wire?.Gateway, loggers.CreateLogger("NetWire.Migration")) { CarriedForwards = () => forwards.Parsed };
        if (tunnel is not null)
        {
            // Before the flows: flushed before the gateway freezes, applied before it imports (docs/migration.md, "Tunnel sockets").
            State.Register(tunnel.StateSection(Flows, loggers.CreateLogger("NetWire.Migration")));
        }

        State.Register(Flows);
        if (setup.Incoming is { } incoming)
        {
            Incoming = new IncomingComponent(incoming, State, Spice, loggers, setup.MigrationTls?.Accept);
            _components.Add(Incoming);

            // A target's gateway takes no guest frame before the state has arrived (docs/migration.md, "Whole-VM migration").
            if (wire is not null)
            {
                wire.HoldGateway = true;
                _ = ReleaseWhenAdoptedAsync(Incoming.Incoming.Adopted, wire);
            }
        }

        Metrics = new ApplianceMetrics(Spice.Server, Incoming?.Incoming);
        if (wire is not null)
        {
            var incomingPart = Incoming;
            wire.StatusSections = json =>
            {
                StatusReport.WriteSpice(json, Spice.Server);
                if (incomingPart is not null)
                {
                    StatusReport.WriteIncoming(json, incomingPart.Incoming);
                }
            };
        }

        if (setup.Control is { } control)
        {
            var flows = Flows;
            _components.Add(new ControlComponent(control, Spice, () => wire?.Ends ?? [], loggers, stop, State, Incoming?.Incoming, setup.MigrationTls,
                () => wire?.Gateway is { } gateway ? new GatewayForwardTable(gateway) : null,
                migrated: () => _ = wire?.HandOverAsync(),
                warm: () =>
                {
                    _ = flows.WarmAsync();
                    CodeWarmup.WarmSourceOnce();
                }));
        }

        if (setup.Metrics is { } metrics)
        {
            _components.Add(new MetricsComponent(metrics, loggers.CreateLogger("NetWire.Serve")));
        }
    }

    /// <summary>The gateway's live flows as a migration carries them.</summary>
    public GatewayFlowSection Flows { get; }

    /// <summary>The wire, or null without one.</summary>
    public WireComponent? Wire { get; }

    /// <summary>The SPICE server.</summary>
    public SpiceServerComponent Spice { get; }

    /// <summary>The migration target's listener, or null when this appliance is not one.</summary>
    public IncomingComponent? Incoming { get; }

    /// <summary>The SPICE server's and migration target's meters.</summary>
    public ApplianceMetrics Metrics { get; }

    /// <summary>The state sections a migration carries.</summary>
    public StateRegistry State { get; } = new();

    /// <summary>
    /// Starts the parts in order. Returns null when all started, else why the first that could
    /// not start failed ("SPICE server: cannot listen on 127.0.0.1:5930: ..."); the parts started
    /// before it are stopped by <see cref="DisposeAsync"/>.
    /// </summary>
    public async Task<string?> StartAsync(CancellationToken cancellationToken)
    {
        foreach (var component in _components)
        {
            try
            {
                await component.StartAsync(cancellationToken).ConfigureAwait(false);
                _started.Add(component);
            }
            catch (SocketException ex)
            {
                return $"{component.Name}: cannot listen on {ListenText(component)}: {ex.Message}";
            }
            catch (IOException ex)
            {
                return $"{component.Name}: {ex.Message}";
            }
        }

        return null;
    }

    /// <summary>
    /// Waits until a started part stops on its own (true: a failure, or the wire's ends finished)
    /// or <paramref name="cancellationToken"/> is cancelled (false).
    /// </summary>
    public async Task<bool> RunAsync(CancellationToken cancellationToken)
    {
        Task anyEnded = Task.WhenAny(_started.Select(c => c.Completion));
        Task stopped = Task.Delay(Timeout.Infinite, cancellationToken);
        await Task.WhenAny(anyEnded, stopped).ConfigureAwait(false);
        return !cancellationToken.IsCancellationRequested;
    }

    /// <summary>Stops the started parts in reverse order (clients are told), then disposes every part.</summary>
    public async ValueTask DisposeAsync()
    {
        for (var i = _started.Count - 1; i >= 0; i--)
        {
            await _started[i].StopAsync().ConfigureAwait(false);
        }

        _started.Clear();
        foreach (var component in _components)
        {
            await component.DisposeAsync().ConfigureAwait(false);
        }

        Metrics.Dispose();
        Flows.Dispose();
    }

    private static async Task ReleaseWhenAdoptedAsync(Task adopted, WireComponent wire)
    {
        try
        {
            await adopted.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        wire.Gateway?.ReleaseHold();
    }

    private string ListenText(IServeComponent component) => component switch
    {
        ControlComponent control => control.Endpoint.Text,
        IncomingComponent incoming => incoming.Text,
        MetricsComponent metrics => metrics.EndPoint.ToString(),
        _ => _spiceOptions.EndPoint?.ToString() ?? _spiceOptions.TlsEndPoint?.ToString() ?? "?",
    };
}
