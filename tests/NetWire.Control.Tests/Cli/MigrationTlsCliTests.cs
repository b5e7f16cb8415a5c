using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Control.Tests.Cli;

/// <summary>
/// <c>netwire serve --migration-x509-dir</c> on two real processes driven by <c>netwire ctl</c>:
/// a plaintext source is refused by the TLS target (and told why), which keeps waiting and then
/// adopts the state from a source with a certificate of its CA.
/// </summary>
public sealed partial class MigrationTlsCliTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task TlsTarget_RefusesAPlaintextSource_ThenTakesTheStateFromItsOwn()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-migtls-").FullName;
        try
        {
            string Qmp(string name) => "unix:" + Path.Combine(directory, name + ".sock");
            ManagedProcess Serve(string name, params string[] args) =>
                ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--password", "s3cret", "--qmp", Qmp(name), .. args]);

            await using var b = Serve("b", "--incoming", "tcp:127.0.0.1:0", "--migration-x509-dir", pki.GoodB);
            await using var a = Serve("a", "--migration-x509-dir", pki.Good);
            await using var plain = Serve("plain");
            var incoming = int.Parse(IncomingListening().Match(await b.WaitForLineAsync(l => IncomingListening().IsMatch(l), TimeSpan.FromSeconds(60))).Groups[1].Value, CultureInfo.InvariantCulture);
            foreach (var process in new[] { a, b, plain })
            {
                await process.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            }

            var uri = $"uri=tcp:127.0.0.1:{incoming}";
            Assert.Equal(0, (await NetwireAsync("ctl", "--qmp", Qmp("plain"), "migrate", uri)).ExitCode);
            var refused = await UntilFinalAsync(Qmp("plain"));
            Assert.Equal("failed", (string?)refused["status"]);
            Assert.Contains("mutual TLS only", (string?)refused["error-desc"], StringComparison.Ordinal);
            await b.WaitForLineAsync(l => l.Contains("refused: this target takes the state over mutual TLS only", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            Assert.Equal(1, (int)(await QueryAsync(Qmp("b"), "query-migrate"))["incoming"]!["tls-refused"]!);

            Assert.Equal(0, (await NetwireAsync("ctl", "--qmp", Qmp("a"), "migrate", uri)).ExitCode);
            var done = await UntilFinalAsync(Qmp("a"));
            Assert.True((string?)done["status"] == "completed", done.ToJsonString());
            await b.WaitForLineAsync(l => l.Contains("adopted sections [", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<JsonObject> QueryAsync(string qmp, string command)
    {
        var result = await NetwireAsync("ctl", "--qmp", qmp, command);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return (JsonObject)JsonNode.Parse(result.Stdout)!;
    }

    private static async Task<JsonObject> UntilFinalAsync(string qmp)
    {
        for (var i = 0; i < 120; i++)
        {
            var reply = await QueryAsync(qmp, "query-migrate");
            if ((string?)reply["status"] is "completed" or "failed" or "cancelled")
            {
                return reply;
            }

            await Task.Delay(250, TestContext.Current.CancellationToken);
        }

        throw new TimeoutException("the migration did not end within 30 s of polling");
    }

    [GeneratedRegex(@"Waiting for incoming migration on 127\.0\.0\.1:(\d+)")]
    private static partial Regex IncomingListening();
}
