using System.Text.Json.Nodes;
using NetWire.Cli.Commands;
using NetWire.Testing;

namespace NetWire.Cli.Tests;

/// <summary><c>netwire ctl</c>: argument words, and round trips against a real <c>netwire serve --qmp</c>.</summary>
public sealed class CtlCommandTests
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public void ParseArguments_InfersBooleansAndIntegers_AndTakesJsonAfterColonEquals()
    {
        var arguments = CtlCommand.ParseArguments(["protocol=spice", "port=5901", "force=true", "password:=\"1234\"", "list:=[1,2]", "empty="])!;

        Assert.Equal("{\"protocol\":\"spice\",\"port\":5901,\"force\":true,\"password\":\"1234\",\"list\":[1,2],\"empty\":\"\"}", arguments.ToJsonString());
        Assert.Null(CtlCommand.ParseArguments([]));
    }

    [Theory]
    [InlineData("novalue")]
    [InlineData("=x")]
    [InlineData("a:={")]
    public void ParseArguments_BadWord_IsAFormatError(string word) =>
        Assert.Throws<FormatException>(() => CtlCommand.ParseArguments([word]));

    [Fact]
    public void ParseArguments_RepeatedKey_IsAFormatError() =>
        Assert.Throws<FormatException>(() => CtlCommand.ParseArguments(["a=1", "a=2"]));

    [Fact]
    public async Task Ctl_QuerySetPasswordUnknownAndQuit_AgainstServe()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-ctl-").FullName;
        try
        {
            var spec = "unix:" + Path.Combine(directory, "qmp.sock");
            await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--password", "old", "--qmp", spec]);
            await serve.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            var query = await NetwireAsync("ctl", "--qmp", spec, "query-spice");
            Assert.Equal(0, query.ExitCode);
            Assert.True((bool)JsonNode.Parse(query.Stdout)!["enabled"]!);

            var set = await NetwireAsync("ctl", "--qmp", spec, "set_password", "protocol=spice", "password:=\"1234\"");
            Assert.Equal(0, set.ExitCode);
            Assert.Equal("{}", set.Stdout.Trim());

            var unknown = await NetwireAsync("ctl", "--qmp", spec, "migrate-everything");
            Assert.Equal(1, unknown.ExitCode);
            Assert.Contains("CommandNotFound", unknown.Stderr, StringComparison.Ordinal);

            var wrongType = await NetwireAsync("ctl", "--qmp", spec, "set_password", "protocol=spice", "password=1234");
            Assert.Equal(1, wrongType.ExitCode);
            Assert.Contains("expected: string", wrongType.Stderr, StringComparison.Ordinal);

            var quit = await NetwireAsync("ctl", "--qmp", spec, "quit");
            Assert.Equal(0, quit.ExitCode);
            Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.False(File.Exists(spec["unix:".Length..]));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Ctl_HostfwdAddQueryRemove_OpensAndClosesAListenerOfServesGateway()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-ctl-").FullName;
        try
        {
            var spec = "unix:" + Path.Combine(directory, "qmp.sock");
            await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "stream:unix:" + Path.Combine(directory, "guest.sock"), "--spice-port", "0", "--disable-ticketing", "--qmp", spec, "--forward", "tcp:127.0.0.1:0:22"]);
            await serve.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            var add = await NetwireAsync("ctl", "--qmp", spec, "hostfwd-add", "host-port=0", "guest-port=80");
            Assert.Equal(0, add.ExitCode);
            var id = (int)JsonNode.Parse(add.Stdout)!["id"]!;
            Assert.Equal(2, id);
            var add6 = await NetwireAsync("ctl", "--qmp", spec, "hostfwd-add", "protocol=udp", "host-addr=::1", "host-port=0", "guest-port=53");
            Assert.Equal(0, add6.ExitCode);

            var query = JsonNode.Parse((await NetwireAsync("ctl", "--qmp", spec, "query-hostfwd")).Stdout)!.AsArray();
            Assert.Equal(3, query.Count);
            var entry = query.Single(e => (int)e!["id"]! == id)!;
            Assert.Equal("tcp", (string?)entry["protocol"]);
            Assert.Equal("127.0.0.1", (string?)entry["host-addr"]);
            Assert.Equal(80, (int)entry["guest-port"]!);
            var port = (int)entry["host-port"]!;
            Assert.NotEqual(0, port);
            using (var client = new System.Net.Sockets.TcpClient())
            {
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
            }

            var duplicate = await NetwireAsync("ctl", "--qmp", spec, "hostfwd-add", $"host-port={port}", "guest-port=80");
            Assert.Equal(1, duplicate.ExitCode);
            Assert.Contains("forwarded already", duplicate.Stderr, StringComparison.Ordinal);
            var badProtocol = await NetwireAsync("ctl", "--qmp", spec, "hostfwd-add", "protocol=sctp", "host-port=1", "guest-port=80");
            Assert.Equal(1, badProtocol.ExitCode);

            Assert.Equal("{}", (await NetwireAsync("ctl", "--qmp", spec, "hostfwd-remove", $"id={id}")).Stdout.Trim());
            await Assert.ThrowsAnyAsync<System.Net.Sockets.SocketException>(async () =>
            {
                using var client = new System.Net.Sockets.TcpClient();
                await client.ConnectAsync(System.Net.IPAddress.Loopback, port);
            });
            var again = await NetwireAsync("ctl", "--qmp", spec, "hostfwd-remove", $"id={id}");
            Assert.Equal(1, again.ExitCode);
            Assert.Contains($"No host forward with id {id}", again.Stderr, StringComparison.Ordinal);
            Assert.Equal(2, JsonNode.Parse((await NetwireAsync("ctl", "--qmp", spec, "query-hostfwd")).Stdout)!.AsArray().Count);

            Assert.Equal(0, (await NetwireAsync("ctl", "--qmp", spec, "quit")).ExitCode);
            Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Ctl_BadSpec_IsAUsageError_NoServer_IsASetupError()
    {
        Assert.Equal(2, (await NetwireAsync("ctl", "--qmp", "udp:1.2.3.4:5", "query-spice")).ExitCode);
        var missing = await NetwireAsync("ctl", "--qmp", "unix:/nonexistent/netwire-qmp.sock", "query-spice");
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("cannot reach", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_BadQmpSpec_IsAUsageError()
    {
        var result = await NetwireAsync("serve", "--guest", "none", "--disable-ticketing", "--spice-port", "0", "--qmp", "tcp:localhost:4444");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--qmp", (await NetwireAsync("serve", "--help")).Stdout, StringComparison.Ordinal);
    }
}
