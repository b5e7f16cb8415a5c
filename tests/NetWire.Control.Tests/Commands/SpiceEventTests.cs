using System.Text.Json.Nodes;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Control.Tests.Commands;

/// <summary>SPICE_CONNECTED / _INITIALIZED / _DISCONNECTED reach negotiated clients, in order, with timestamps.</summary>
public sealed class SpiceEventTests
{
    [Fact]
    public async Task MainLink_ThenClose_EmitsConnectedInitializedDisconnected()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await spice.LinkAsync(0, 1, ControlHarness.Password));
        var local = (System.Net.IPEndPoint)spice.Socket.LocalEndPoint!;
        await spice.DisposeAsync();

        var connected = await client.WaitEventAsync("SPICE_CONNECTED", ct);
        var initialized = await client.WaitEventAsync("SPICE_INITIALIZED", ct);
        var disconnected = await client.WaitEventAsync("SPICE_DISCONNECTED", ct);

        Assert.Equal("127.0.0.1", (string?)connected["data"]!["client"]!["host"]);
        Assert.Equal(local.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)connected["data"]!["client"]!["port"]);
        Assert.Equal(harness.SpiceEndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)connected["data"]!["server"]!["port"]);
        Assert.Equal("spice", (string?)initialized["data"]!["server"]!["auth"]);
        Assert.NotEqual(0u, (uint)initialized["data"]!["client"]!["connection-id"]!);
        Assert.Equal(1, (int)initialized["data"]!["client"]!["channel-type"]!);
        Assert.Equal("ipv4", (string?)disconnected["data"]!["client"]!["family"]);
        foreach (var e in new[] { connected, initialized, disconnected })
        {
            Assert.True((long)e["timestamp"]!["seconds"]! > 1_600_000_000);
            Assert.InRange((long)e["timestamp"]!["microseconds"]!, 0, 999_999);
        }
    }

    [Fact]
    public async Task RefusedLink_EmitsConnectedAndDisconnected_ButNoInitialized()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await using (var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint))
        {
            Assert.Equal(SpiceLinkErr.PermissionDenied, await spice.LinkAsync(0, 1, "wrong"));
        }

        await client.WaitEventAsync("SPICE_CONNECTED", ct);
        await client.WaitEventAsync("SPICE_DISCONNECTED", ct);
        Reply.Ok(await client.ExecuteAsync("query-spice", null, ct));
        Assert.DoesNotContain(client.Events, e => (string?)e["event"] == "SPICE_INITIALIZED");
    }

    [Fact]
    public async Task ClientBeforeNegotiation_GetsNoEvents()
    {
        await using var harness = ControlHarness.Start();
        await using var early = await harness.ConnectAsync();
        await using var watcher = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await using (var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint))
        {
            Assert.Equal(SpiceLinkErr.Ok, await spice.LinkAsync(0, 1, ControlHarness.Password));
        }

        await watcher.WaitEventAsync("SPICE_DISCONNECTED", ct);
        Reply.Ok(await early.NegotiateAsync(ct));
        Assert.Empty(early.Events);
    }
}
