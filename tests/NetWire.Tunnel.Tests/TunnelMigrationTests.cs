using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// <c>netwire tunnel-client</c> follows a semi-seamless migration of <c>netwire serve --tunnel</c>
/// A to B (B started with --incoming), driven over QMP with <c>netwire ctl</c>: its services
/// are mapped again on B.
/// </summary>
public sealed partial class TunnelMigrationTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], s_wait);

    [Fact]
    public async Task ClientFollowsAToB_AndItsServicesAreMappedOnB()
    {
        var directory = Directory.CreateTempSubdirectory("nwtun-mig-").FullName;
        try
        {
            var qmpA = "unix:" + Path.Combine(directory, "a.sock");
            await using var a = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Path.Combine(directory, "ga.sock")}", "--tunnel",
                "--spice-port", "0", "--password", "s3cret", "--qmp", qmpA]);
            await using var b = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Path.Combine(directory, "gb.sock")}", "--tunnel",
                "--spice-port", "0", "--password", "s3cret", "--qmp", "unix:" + Path.Combine(directory, "b.sock"), "--incoming", "tcp:127.0.0.1:0"]);
            var spiceA = PortOf(await a.WaitForLineAsync(l => SpiceListening().IsMatch(l), s_wait), SpiceListening());
            var spiceB = PortOf(await b.WaitForLineAsync(l => SpiceListening().IsMatch(l), s_wait), SpiceListening());
            var incoming = PortOf(await b.WaitForLineAsync(l => IncomingListening().IsMatch(l), s_wait), IncomingListening());
            await a.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), s_wait);

            await using var client = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{spiceA}", "--password", "s3cret",
                "--service", "web=127.0.0.1:8080,port=80", "--log-level", "Information"]);
            await client.WaitForLineAsync(l => l.StartsWith("service web 10.0.2.31:80", StringComparison.Ordinal), s_wait);

            var info = await NetwireAsync("ctl", "--qmp", qmpA, "client_migrate_info", "protocol=spice", "hostname=127.0.0.1", $"port={spiceB}");
            Assert.True(info.ExitCode == 0, info.Stderr);
            await UntilAsync(async () => await ClientStateAsync(qmpA) == 3);

            var migrate = await NetwireAsync("ctl", "--qmp", qmpA, "migrate", $"uri=tcp:127.0.0.1:{incoming}");
            Assert.True(migrate.ExitCode == 0, migrate.Stderr);

            // The tunnel channel on B starts after MIGRATE_END and maps the service again.
            await b.WaitForLineAsync(l => l.Contains("up for session", StringComparison.Ordinal), s_wait);
            await UntilAsync(() => Task.FromResult(client.StdoutLines.Count(l => l.StartsWith("service web 10.0.2.31:80", StringComparison.Ordinal)) >= 2));
            await client.WaitForLineAsync(l => l.Contains($"linked to 127.0.0.1:{spiceB}", StringComparison.Ordinal), s_wait);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<int> ClientStateAsync(string qmp)
    {
        var result = await NetwireAsync("ctl", "--qmp", qmp, "query-migrate-client-state");
        Assert.True(result.ExitCode == 0, result.Stderr);
        return (int)JsonNode.Parse(result.Stdout)!["state"]!;
    }

    private static async Task UntilAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 240; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(250, TestContext.Current.CancellationToken);
        }

        Assert.Fail("condition not met within 60 s of polling");
    }

    private static int PortOf(string line, Regex regex) => int.Parse(regex.Match(line).Groups[1].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex SpiceListening();

    [GeneratedRegex(@"Waiting for incoming migration on 127\.0\.0\.1:(\d+)")]
    private static partial Regex IncomingListening();
}
