using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Metrics;

namespace NetWire.Appliance.Tests;

/// <summary>The metrics endpoint in process: every instrument on a <c>NetWire</c> meter, created before or after start, is scraped.</summary>
public sealed class MetricsComponentTests
{
    [Fact]
    public async Task Scrape_HasEveryNetWireInstrument_AndTheProcessFigures()
    {
        using var before = new Meter(WireMetrics.MeterName);
        var value = 5L;
        before.CreateObservableCounter("netwire.test.before", () => new Measurement<long>(Volatile.Read(ref value), new KeyValuePair<string, object?>("end", "guest")), "{frame}", "test");
        var endPoint = new IPEndPoint(IPAddress.Loopback, FreePort());
        await using var component = new MetricsComponent(endPoint, NullLogger.Instance);
        await component.StartAsync(TestContext.Current.CancellationToken);
        using var after = new Meter(WireMetrics.MeterName);
        var counter = after.CreateCounter<long>("netwire.test.after", "{migration}", "test");
        counter.Add(2, new KeyValuePair<string, object?>("outcome", "completed"));

        using var http = new HttpClient();
        var text = await http.GetStringAsync($"http://{endPoint}/metrics", TestContext.Current.CancellationToken);
        Volatile.Write(ref value, 9);
        text = await http.GetStringAsync($"http://{endPoint}/metrics", TestContext.Current.CancellationToken);
        Assert.Contains("process_cpu_seconds_total", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE netwire_test_before_total counter", text, StringComparison.Ordinal);
        Assert.Contains("netwire_test_before_total{end=\"guest\"} 9", text, StringComparison.Ordinal);
        Assert.Contains("netwire_test_after_total{outcome=\"completed\"} 2", text, StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
