using Microsoft.Extensions.Logging;
using NetWire.Control.Migration;
using NetWire.Core.State;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>--incoming tcp:ADDRESS:PORT</c>: the appliance is a migration target. It waits for the
/// source's state stream and lets clients migrating in start once the state is adopted.
/// </summary>
internal sealed class IncomingComponent : IServeComponent
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IncomingComponent(string uri, StateRegistry state, SpiceServerComponent spice, ILoggerFactory loggers)
    {
        Text = uri;
        Incoming = new IncomingMigration(MigrationWire.ParseIncoming(uri), state, spice.Server, loggers.CreateLogger<IncomingMigration>());
    }

    public string Name => "incoming migration";

    /// <summary>The --incoming text, for messages.</summary>
    public string Text { get; }

    public IncomingMigration Incoming { get; }

    public Task Completion => _completion.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Incoming.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync() => Incoming.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await Incoming.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }
}
