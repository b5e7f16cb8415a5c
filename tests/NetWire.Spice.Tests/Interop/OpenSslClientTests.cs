using System.Globalization;
using NetWire.Core.Tls;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>
/// The TLS port against OpenSSL's own client, <c>openssl s_client</c>: TLS 1.1 is refused by the
/// server (the client is allowed to offer it, so the refusal is the server's and is counted),
/// TLS 1.2 verifies against the CA and the address; <c>--tls-ciphers</c> refuses a suite it
/// does not list and negotiates one it does.
/// </summary>
[Trait("Category", "Host")]
public sealed class OpenSslClientTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    [Fact]
    public async Task Tls11_IsRefusedByTheServer_Tls12_Verifies()
    {
        await using var server = TestServer.StartTls(pki.Good);
        var old = await SClientAsync(server, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0");
        Assert.NotEqual(0, old.ExitCode);
        Assert.Contains("alert protocol version", old.Stdout + old.Stderr, StringComparison.Ordinal);
        await Poll.UntilAsync(() => server.Server.Counters.Of(LinkOutcome.TlsFailed) == 1, "link outcome TlsFailed counted once");

        var current = await SClientAsync(server, "-tls1_2");
        Assert.True(current.ExitCode == 0, current.Stdout + current.Stderr);
        Assert.Contains("Protocol  : TLSv1.2", current.Stdout, StringComparison.Ordinal);
        Assert.Contains("Verify return code: 0 (ok)", current.Stdout, StringComparison.Ordinal);
        Assert.Equal(1, server.Server.Counters.Of(LinkOutcome.TlsFailed));
    }

    [Fact]
    public async Task TlsCiphers_RefuseAnUnlistedSuite_AndNegotiateAListedOne()
    {
        await using var server = TestServer.StartTls(pki.Good, ciphers: TlsCipherList.Parse("ECDHE-RSA-AES256-GCM-SHA384"));
        var refused = await SClientAsync(server, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256");
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("handshake failure", refused.Stdout + refused.Stderr, StringComparison.Ordinal);
        await Poll.UntilAsync(() => server.Server.Counters.Of(LinkOutcome.TlsFailed) == 1, "link outcome TlsFailed counted once");

        var listed = await SClientAsync(server, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384");
        Assert.True(listed.ExitCode == 0, listed.Stdout + listed.Stderr);
        Assert.Contains("Cipher    : ECDHE-RSA-AES256-GCM-SHA384", listed.Stdout, StringComparison.Ordinal);
    }

    private Task<ProcessResult> SClientAsync(TestServer server, params string[] args)
    {
        HostRequirements.RequireCommand("openssl");
        return ProcessRunner.RunAsync("openssl", [
            "s_client", "-connect", "127.0.0.1:" + server.TlsEndPoint.Port.ToString(CultureInfo.InvariantCulture),
            "-CAfile", pki.Pki.CaCert, "-verify_return_error", "-verify_ip", "127.0.0.1", .. args], TimeSpan.FromSeconds(30), stdin: string.Empty);
    }
}
