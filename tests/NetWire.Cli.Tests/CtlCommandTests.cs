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
