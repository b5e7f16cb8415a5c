using System.Text.Json.Nodes;
using NetWire.Control.Qmp;

namespace NetWire.Control.Tests.Qmp;

/// <summary>Greeting, capabilities negotiation, client limit.</summary>
public sealed class QmpNegotiationTests
{
    [Fact]
    public async Task Greeting_NamesNetWire_AndOffersNoCapabilities()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectAsync();

        var qmp = Assert.IsType<JsonObject>(client.Greeting["QMP"], exactMatch: false);
        Assert.Equal("netwire", (string?)qmp["version"]!["package"]);
        Assert.NotNull(qmp["version"]!["qemu"]!["major"]);
        Assert.Empty(Assert.IsType<JsonArray>(qmp["capabilities"]));
    }

    [Theory]
    [InlineData("query-spice")]
    [InlineData("quit")]
    [InlineData("no-such-command")]
    public async Task CommandBeforeCapabilities_IsCommandNotFound_AndNegotiationStillWorks(string command)
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectAsync();
        var ct = TestContext.Current.CancellationToken;

        var description = Reply.Error(await client.ExecuteAsync(command, null, ct), QmpErrorClass.CommandNotFound);
        Assert.Contains("qmp_capabilities", description, StringComparison.Ordinal);
        Assert.False(harness.QuitRequested.Task.IsCompleted);

        Reply.Ok(await client.NegotiateAsync(ct));
        Reply.Ok(await client.ExecuteAsync("query-spice", null, ct));
    }

    [Fact]
    public async Task CapabilitiesWithArguments_IsAnError_AndDoesNotNegotiate()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectAsync();
        var ct = TestContext.Current.CancellationToken;

        Reply.Error(await client.ExecuteAsync("qmp_capabilities", new JsonObject { ["enable"] = new JsonArray("oob") }, ct), QmpErrorClass.GenericError);
        Reply.Error(await client.ExecuteAsync("query-spice", null, ct), QmpErrorClass.CommandNotFound);
    }

    [Fact]
    public async Task QueryCommands_ListsTodaysCommands()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();

        var names = Reply.Ok(await client.ExecuteAsync("query-commands", null, TestContext.Current.CancellationToken)).AsArray().Select(c => (string?)c!["name"]).ToArray();
        foreach (var name in new[] { "qmp_capabilities", "query-commands", "query-spice", "query-wire", "set_password", "expire_password", "quit" })
        {
            Assert.Contains(name, names);
        }
    }

    [Fact]
    public async Task ClientOverTheLimit_GetsAnErrorLine_OthersKeepWorking()
    {
        await using var harness = ControlHarness.Start(new QmpServerOptions { MaxClients = 2 });
        var ct = TestContext.Current.CancellationToken;
        await using var first = await harness.ConnectNegotiatedAsync();
        await using var second = await harness.ConnectNegotiatedAsync();

        await using var third = await QmpClient.ConnectAsync(harness.Endpoint, ct);
        Assert.Contains("too many control clients", (string?)third.Greeting["error"]!["desc"], StringComparison.Ordinal);

        Reply.Ok(await first.ExecuteAsync("query-spice", null, ct));
    }

    [Fact]
    public async Task SecondServer_OnALiveSocketPath_IsRefused()
    {
        await using var harness = ControlHarness.Start();
        await using var other = new QmpServer(harness.Endpoint, new QmpCommandTable(), new QmpServerOptions(), Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        Assert.Throws<System.Net.Sockets.SocketException>(other.Start);
    }
}
