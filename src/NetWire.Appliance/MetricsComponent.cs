using System.Net;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace NetWire.Appliance;

/// <summary>
/// <c>--metrics-addr ADDR:PORT</c>: Prometheus text at <c>http://ADDR:PORT/metrics</c>, served by
/// prometheus-net from every instrument on a meter named <c>NetWire</c> (<see cref="MeterBridge"/>) (the wire ends' frames,
/// bytes and drops, the gateway's, the SPICE server's, migrations: whatever publishes there,
/// including meters created after start) and its own process figures (<c>process_*</c>, <c>dotnet_*</c>).
/// </summary>
/// <remarks>
/// A registry of its own, not prometheus-net's static default, so two appliances in one process
/// (tests) do not share series. Observable instruments are read at each scrape; names are
/// <see cref="MeterBridge.PrometheusName"/>'s. Once the endpoint listens it logs "Metrics served
/// at": it starts after the SPICE server and the control socket, so their lines do not say a
/// scrape can connect yet.
/// </remarks>
internal sealed class MetricsComponent(IPEndPoint endPoint, ILogger logger) : IServeComponent
{
    private MeterBridge? _adapter;
    private MetricServer? _server;

    public string Name => "metrics endpoint";

    public Task Completion { get; } = new TaskCompletionSource().Task;

    /// <summary>The address served, for messages.</summary>
    public IPEndPoint EndPoint => endPoint;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var registry = Metrics.NewCustomRegistry();
        DotNetStats.Register(registry);
        _adapter = new MeterBridge(registry);
        var host = endPoint.Address.Equals(IPAddress.Any) ? "+" : endPoint.Address.ToString();
        _server = new MetricServer(host, endPoint.Port, "metrics/", registry);
        try
        {
            _server.Start();
        }
        catch (HttpListenerException ex)
        {
            throw new IOException($"cannot listen on {endPoint}: {ex.Message}", ex);
        }

        ApplianceLog.MetricsServed(logger, endPoint.ToString());
        return Task.CompletedTask;
    }

    public async Task StopAsync()
    {
        if (_server is { } server)
        {
            await server.StopAsync().ConfigureAwait(false);
            _server = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _adapter?.Dispose();
        _adapter = null;
    }
}
