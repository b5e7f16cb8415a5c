using Microsoft.Extensions.Logging;
using NetWire.Control;

namespace NetWire.Appliance;

/// <summary>The QMP control socket (<c>--qmp</c>) as a part of <c>netwire serve</c>; <c>quit</c> stops the appliance.</summary>
internal sealed class ControlComponent : IServeComponent
{
    private readonly ApplianceControl _control;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="forwards">The gateway's forward table for hostfwd-add and friends, or null without a gateway.</param>
    /// <param name="migrated">Called when a migration away from this appliance completed (its wire is handed over); must not block.</param>
    /// <param name="warm">Called when a migration is in sight (client_migrate_info, migrate); must not block.</param>
    public ControlComponent(ControlEndpoint endpoint, SpiceServerComponent spice, Func<IReadOnlyList<NetWire.Core.Wire.WireEnd>> wireEnds, ILoggerFactory loggers, CancellationTokenSource stop, NetWire.Core.State.StateRegistry? state = null, NetWire.Control.Migration.IncomingMigration? incoming = null, NetWire.Control.Migration.MigrationTls? migrationTls = null, Func<IHostForwardTable?>? forwards = null, Action? migrated = null, Action? warm = null)
    {
        Endpoint = endpoint;
        // Off the control client's receive loop: the stop path waits for that loop to end.
        _control = new ApplianceControl(endpoint, spice.Server, wireEnds, () => ThreadPool.QueueUserWorkItem(static s => s.Cancel(), stop, preferLocal: false), loggers, state: state, incoming: incoming, migrationTls: migrationTls, forwards: forwards);
        _control.Migration.Completed = migrated;
        _control.Migration.Warm = warm;
    }

    public string Name => "control socket";

    /// <summary>Where it listens, for messages.</summary>
    public ControlEndpoint Endpoint { get; }

    public Task Completion => _completion.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _control.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync() => _control.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _control.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }
}
