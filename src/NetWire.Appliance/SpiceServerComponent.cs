using Microsoft.Extensions.Logging;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Appliance;

/// <summary>The SPICE server as a part of <c>netwire serve</c>.</summary>
internal sealed class SpiceServerComponent : IServeComponent
{
    private readonly SpiceServer _server;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SpiceServerComponent(SpiceServerOptions options, TicketAuthority tickets, ILoggerFactory loggers) =>
        _server = new SpiceServer(options, tickets, loggers);

    public string Name => "SPICE server";

    public SpiceServer Server => _server;

    public Task Completion => _completion.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _server.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync() => _server.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync().ConfigureAwait(false);
        _completion.TrySetResult();
    }
}
