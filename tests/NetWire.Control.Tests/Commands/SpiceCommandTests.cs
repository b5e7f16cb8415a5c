using System.Text.Json.Nodes;
using NetWire.Control.Qmp;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Control.Tests.Commands;

/// <summary>set_password / expire_password / query-spice, proven with real SPICE links.</summary>
public sealed class SpiceCommandTests
{
    private static JsonObject Spice(params (string Key, JsonNode? Value)[] members)
    {
        var arguments = new JsonObject { ["protocol"] = "spice" };
        foreach (var (key, value) in members)
        {
            arguments[key] = value;
        }

        return arguments;
    }

    private static async Task<SpiceLinkErr> LinkMainAsync(ControlHarness harness, string password)
    {
        await using var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint);
        return await spice.LinkAsync(0, 1, password);
    }

    [Fact]
    public async Task SetPassword_NewPasswordLinks_OldOneIsRefused()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal(SpiceLinkErr.Ok, await LinkMainAsync(harness, ControlHarness.Password));

        Reply.Ok(await client.ExecuteAsync("set_password", Spice(("password", "n3w-pass")), ct));

        Assert.Equal(SpiceLinkErr.PermissionDenied, await LinkMainAsync(harness, ControlHarness.Password));
        Assert.Equal(SpiceLinkErr.Ok, await LinkMainAsync(harness, "n3w-pass"));
    }

    [Fact]
    public async Task ExpirePassword_Now_RefusesTheNextLink_Never_AcceptsAgain()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        Reply.Ok(await client.ExecuteAsync("expire_password", Spice(("time", "now")), ct));
        Assert.Equal(SpiceLinkErr.PermissionDenied, await LinkMainAsync(harness, ControlHarness.Password));

        Reply.Ok(await client.ExecuteAsync("expire_password", Spice(("time", "never")), ct));
        Assert.Equal(SpiceLinkErr.Ok, await LinkMainAsync(harness, ControlHarness.Password));
    }

    [Theory]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890", "60 bytes")]
    [InlineData("a\0b", "NUL")]
    public async Task SetPassword_ThatSpiceCannotCarry_IsAnError_AndTheOldPasswordStays(string password, string descriptionPart)
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();

        var description = Reply.Error(await client.ExecuteAsync("set_password", Spice(("password", password)), TestContext.Current.CancellationToken), QmpErrorClass.GenericError);

        Assert.Contains(descriptionPart, description, StringComparison.Ordinal);
        Assert.Equal(SpiceLinkErr.Ok, await LinkMainAsync(harness, ControlHarness.Password));
    }

    [Fact]
    public async Task SetPassword_ForVnc_IsAnError()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var arguments = new JsonObject { ["protocol"] = "vnc", ["password"] = "x" };

        Assert.Contains("VNC", Reply.Error(await client.ExecuteAsync("set_password", arguments, TestContext.Current.CancellationToken), QmpErrorClass.GenericError), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SetPassword_ConnectedFail_WithAClient_IsAnError_AndKeepsThePassword()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;
        await using var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await spice.LinkAsync(0, 1, ControlHarness.Password));
        await client.WaitEventAsync("SPICE_INITIALIZED", ct);

        Reply.Error(await client.ExecuteAsync("set_password", Spice(("password", "other"), ("connected", "fail")), ct), QmpErrorClass.GenericError);
        Reply.Error(await client.ExecuteAsync("set_password", Spice(("password", "other"), ("connected", "sometimes")), ct), QmpErrorClass.GenericError);

        Assert.Equal(SpiceLinkErr.Ok, await LinkMainAsync(harness, ControlHarness.Password));
    }

    [Fact]
    public async Task QuerySpice_ListsTheLinkedSession()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;
        await using var spice = await RawSpiceClient.ConnectAsync(harness.SpiceEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await spice.LinkAsync(0, 1, ControlHarness.Password));
        var initialized = await client.WaitEventAsync("SPICE_INITIALIZED", ct);

        var info = Reply.Ok(await client.ExecuteAsync("query-spice", null, ct));

        Assert.True((bool)info["enabled"]!);
        Assert.Equal(harness.SpiceEndPoint.Port, (int)info["port"]!);
        Assert.Equal("spice", (string?)info["auth"]);
        var channel = Assert.Single(info["channels"]!.AsArray());
        Assert.Equal((uint)initialized["data"]!["client"]!["connection-id"]!, (uint)channel!["connection-id"]!);
        Assert.Equal(1, (int)channel["channel-type"]!);
    }

    [Fact]
    public async Task QueryWire_WithoutWireEnds_IsAnEmptyList()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();

        Assert.Empty(Reply.Ok(await client.ExecuteAsync("query-wire", null, TestContext.Current.CancellationToken))["ends"]!.AsArray());
    }

    [Fact]
    public async Task Quit_RepliesFirst_ThenAsksTheApplianceToStop()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        Reply.Ok(await client.ExecuteAsync("quit", null, ct));

        await harness.QuitRequested.Task.WaitAsync(ct);
    }
}
