using System.Globalization;
using System.Text.Json.Nodes;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>
/// spice-gtk 0.42 (session properties tls-port, ca-file, cert-subject) against <c>netwire
/// serve --tls-port</c> with certificates made by openssl: it links over TLS with the right CA
/// and subject and fails with error-tls against another CA or subject; with
/// <c>--tls-channel main</c> and both ports a client given both ends on TLS (NEED_SECURED on
/// the plaintext port, seen in query-spice), and a client with the plaintext port only is refused.
/// </summary>
[Trait("Category", "Host")]
public sealed class SpiceGtkTlsTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static string Text(int port) => port.ToString(CultureInfo.InvariantCulture);

    [Fact]
    public async Task TlsPortOnly_RightCa_LinksOverTls()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartTlsAsync(pki.Good, plain: false, "--password", "s3cret");
        var result = await GtkClient.RunAsync(["--tls-port", Text(serve.TlsPort), "--ca-file", pki.Pki.CaCert], "s3cret", seconds: 2);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.Contains($"opened=1 lost=0 error=none host=127.0.0.1 port=None tls-port={serve.TlsPort} server-port={serve.TlsPort}", result.Stdout, StringComparison.Ordinal);
        Assert.Single(serve.LinesWith("main channel up"));
        Assert.Matches(@"Link \d+: TLS 1\.[23] ", Assert.Single(serve.LinesWith(": TLS 1.")));
    }

    [Fact]
    public async Task AnotherCa_FailsWithErrorTls_AndTheServerCountsIt()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartTlsAsync(pki.Good, plain: false, "--disable-ticketing");
        var result = await GtkClient.RunAsync(["--tls-port", Text(serve.TlsPort), "--ca-file", pki.Foreign.CaCert], null, seconds: 10);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("error=error-tls", result.Stdout, StringComparison.Ordinal);
        await serve.Process.WaitForLineAsync(l => l.Contains("refused on the TLS port: TLS handshake failed", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.Empty(serve.LinesWith("main channel up"));
    }

    [Fact]
    public async Task CertSubject_RightOneLinks_WrongOneFailsWithErrorTls()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartTlsAsync(pki.Good, plain: false, "--disable-ticketing");
        var right = await GtkClient.RunAsync(["--tls-port", Text(serve.TlsPort), "--ca-file", pki.Pki.CaCert, "--cert-subject", "CN=netwire-a"], null, seconds: 2);
        Assert.True(right.ExitCode == 0, right.Stdout + right.Stderr);
        var wrong = await GtkClient.RunAsync(["--tls-port", Text(serve.TlsPort), "--ca-file", pki.Pki.CaCert, "--cert-subject", "CN=netwire-b"], null, seconds: 10);
        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("error=error-tls", wrong.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TlsChannelMain_ClientWithBothPortsEndsOnTls_PlaintextOnlyClientIsRefused()
    {
        GtkClient.Require();
        var qmp = "unix:" + Path.Combine(pki.Pki.Root, $"qmp-{Guid.NewGuid():N}.sock");
        await using var serve = await ServeProcess.StartTlsAsync(pki.Good, plain: true, "--disable-ticketing", "--tls-channel", "main", "--qmp", qmp);
        await serve.Process.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await using (var client = GtkClient.Start(["--port", Text(serve.Port), "--tls-port", Text(serve.TlsPort), "--ca-file", pki.Pki.CaCert], seconds: 30))
        {
            await client.WaitForLineAsync(l => l.Contains($"main opened port={serve.Port} tls-port={serve.TlsPort} server-port={serve.TlsPort}", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
            var spice = await QuerySpiceAsync(qmp);
            Assert.Equal(serve.TlsPort, (int)spice["tls-port"]!);
            Assert.Equal(serve.Port, (int)spice["port"]!);
            Assert.Equal("tls", (string?)spice["channel-security"]!["main"]);
            var channel = Assert.Single(spice["channels"]!.AsArray())!;
            Assert.True((bool)channel["tls"]!);
            Assert.Equal(1, (int)spice["links"]!["refused"]!["need-secured"]!);
        }

        var refused = await GtkClient.RunAsync(["--port", Text(serve.Port)], null, seconds: 10);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("opened=0", refused.Stdout, StringComparison.Ordinal);
        Assert.Equal(2, (int)(await QuerySpiceAsync(qmp))["links"]!["refused"]!["need-secured"]!);
    }

    private static async Task<JsonNode> QuerySpiceAsync(string qmp)
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", qmp, "query-spice"], TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.Stderr);
        return JsonNode.Parse(result.Stdout)!;
    }
}
