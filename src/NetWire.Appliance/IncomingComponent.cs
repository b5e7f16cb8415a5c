using Microsoft.Extensions.Logging;
using NetWire.Control.Migration;
using NetWire.Core.State;

namespace NetWire.Appliance;

/// <summary>
/// <c>--incoming tcp:ADDRESS:PORT</c>: the appliance is a migration target. It waits for the
/// source's state stream and lets clients migrating in start once the state is adopted.
/// </summary>
internal sealed class IncomingComponent : IServeComponent
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ILogger _logger;
    private readonly StateRegistry _state;

    /// <param name="tls">Mutual TLS for the state stream (<c>--migration-x509-dir</c>), or null.</param>
    public IncomingComponent(string uri, StateRegistry state, SpiceServerComponent spice, ILoggerFactory loggers, NetWire.Core.Tls.TlsSettings? tls = null)
    {
        Text = uri;
        _logger = loggers.CreateLogger("NetWire.Serve");
        _state = state;
        Incoming = new IncomingMigration(MigrationWire.ParseIncoming(uri), state, spice.Server, loggers.CreateLogger<IncomingMigration>(), tls);
    }

    public string Name => "incoming migration";

    /// <summary>The --incoming text, for messages.</summary>
    public string Text { get; }

    public IncomingMigration Incoming { get; }

    public Task Completion => _completion.Task;

    /// <summary>
    /// Listens for the state stream, then compiles the link, main channel, migration, state and
    /// gateway code (the flows' restore) before returning, so the control socket (started after this part) answers only once
    /// the target can switch a client without pausing to compile.
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Incoming.Start();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var methods = await CodeWarmup.WarmMigrationAsync().WaitAsync(cancellationToken).ConfigureAwait(false);

        // One stream written and read back, thrown away: the sections' writers and the stream's
        // reader run once here rather than for the first time inside this appliance's own
        // migration onwards (writing has no effect on a section: its handover sections are not frozen).
        try
        {
            _ = StateStream.Parse(_state.Build());
        }
        catch (Exception ex) when (ex is ArgumentException or StateFormatException)
        {
            // Only a warm-up: a migration reports its own errors.
        }

        ApplianceLog.TargetReady(_logger, Text, methods, watch.ElapsedMilliseconds);
    }

    public Task StopAsync() => Incoming.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await Incoming.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }
}
