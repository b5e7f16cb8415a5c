using System.Text.Json.Nodes;
using NetWire.Control.Qmp;

namespace NetWire.Control.Tests.Qmp;

/// <summary>Whatever a client sends, it gets exactly one error reply and its socket keeps working.</summary>
public sealed class QmpBadInputTests
{
    public static TheoryData<string, string, string> BadLines => new()
    {
        { "{\"execute\": \"query-spice\"", QmpErrorClass.GenericError, "JSON parse error" },
        { "not json at all", QmpErrorClass.GenericError, "JSON parse error" },
        { "{\"execute\": \"query-spice\", \"execute\": \"quit\"}", QmpErrorClass.GenericError, "" },
        { "[\"execute\", \"query-spice\"]", QmpErrorClass.GenericError, "must be a JSON object" },
        { "42", QmpErrorClass.GenericError, "must be a JSON object" },
        { "{}", QmpErrorClass.GenericError, "lacks member 'execute'" },
        { "{\"execute\": 7}", QmpErrorClass.GenericError, "'execute' must be a string" },
        { "{\"execute\": \"query-spice\", \"arguments\": [1]}", QmpErrorClass.GenericError, "'arguments' must be an object" },
        { "{\"execute\": \"query-spice\", \"bogus\": 1}", QmpErrorClass.GenericError, "'bogus' is unexpected" },
        { "{\"execute\": \"no-such-command\"}", QmpErrorClass.CommandNotFound, "no-such-command has not been found" },
        { "{\"execute\": \"set_password\", \"arguments\": {\"protocol\": \"spice\", \"password\": 5}}", QmpErrorClass.GenericError, "Invalid parameter type for 'password', expected: string" },
        { "{\"execute\": \"set_password\", \"arguments\": {\"protocol\": \"spice\", \"password\": {\"a\": 1}}}", QmpErrorClass.GenericError, "Invalid parameter type for 'password'" },
        { "{\"execute\": \"set_password\", \"arguments\": {\"protocol\": \"spice\"}}", QmpErrorClass.GenericError, "Parameter 'password' is missing" },
        { "{\"execute\": \"query-spice\", \"arguments\": {\"extra\": true}}", QmpErrorClass.GenericError, "Parameter 'extra' is unexpected" },
        { "{\"execute\": \"qmp_capabilities\"}", QmpErrorClass.CommandNotFound, "already complete" },
        { "{\"execute\": \"expire_password\", \"arguments\": {\"protocol\": \"spice\", \"time\": \"tomorrow\"}}", QmpErrorClass.GenericError, "'time'" },
        { "{\"execute\": \"set_password\", \"arguments\": {\"protocol\": \"rdp\", \"password\": \"x\"}}", QmpErrorClass.GenericError, "'protocol'" },
        { new string('[', 100) + new string(']', 100), QmpErrorClass.GenericError, "JSON parse error" },
    };

    [Theory]
    [MemberData(nameof(BadLines))]
    public async Task BadLine_GetsOneError_AndTheSocketStaysUsable(string line, string errorClass, string descriptionPart)
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await client.SendLineAsync(line, ct);
        var description = Reply.Error(await client.ReadReplyAsync(ct), errorClass);
        Assert.Contains(descriptionPart, description, StringComparison.Ordinal);

        Assert.IsType<JsonObject>(Reply.Ok(await client.ExecuteAsync("query-spice", null, ct)), exactMatch: false);
    }

    [Fact]
    public async Task InvalidUtf8_GetsAnError_AndTheSocketStaysUsable()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        byte[] line = [.. "{\"execute\": \"query-spice\", \"id\": \""u8, 0xff, 0xfe, .. "\"}\n"u8];
        await client.SendBytesAsync(line, ct);
        Reply.Error(await client.ReadReplyAsync(ct), QmpErrorClass.GenericError);

        Reply.Ok(await client.ExecuteAsync("query-spice", null, ct));
    }

    [Fact]
    public async Task ErrorReply_EchoesTheId()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await client.SendLineAsync("{\"execute\": \"nope\", \"id\": {\"n\": [1, 2]}}", ct);
        var reply = await client.ReadReplyAsync(ct);
        Reply.Error(reply, QmpErrorClass.CommandNotFound);
        Assert.Equal("{\"n\":[1,2]}", reply["id"]!.ToJsonString());
    }

    [Fact]
    public async Task BlankLines_AreIgnored()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await client.SendLineAsync("   \r", ct);
        await client.SendLineAsync("{\"execute\": \"query-commands\", \"id\": 1}", ct);
        var reply = await client.ReadReplyAsync(ct);
        Assert.Equal(1, (int)reply["id"]!);
    }

    [Fact]
    public async Task OverlongLine_GetsOneError_ThenTheNextLineWorks()
    {
        await using var harness = ControlHarness.Start(new QmpServerOptions { MaxLineBytes = 256 });
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await client.SendLineAsync("{\"execute\": \"query-spice\", \"id\": \"" + new string('x', 2000) + "\"}", ct);
        Assert.Contains("longer than 256 bytes", Reply.Error(await client.ReadReplyAsync(ct), QmpErrorClass.GenericError), StringComparison.Ordinal);

        var reply = await client.ExecuteAsync("query-spice", null, ct);
        Reply.Ok(reply);
        Assert.Equal("2", (string?)reply["id"]);
    }

    [Fact]
    public async Task SeveralCommandsInOneWrite_AreAnsweredInOrder()
    {
        await using var harness = ControlHarness.Start();
        await using var client = await harness.ConnectNegotiatedAsync();
        var ct = TestContext.Current.CancellationToken;

        await client.SendLineAsync("{\"execute\": \"query-wire\", \"id\": 1}\n{\"execute\": \"bad\", \"id\": 2}\n{\"execute\": \"query-spice\", \"id\": 3}", ct);
        Assert.Equal(1, (int)(await client.ReadReplyAsync(ct))["id"]!);
        Assert.Equal(2, (int)(await client.ReadReplyAsync(ct))["id"]!);
        Assert.Equal(3, (int)(await client.ReadReplyAsync(ct))["id"]!);
    }
}
