using System.Net;
using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Cli;

/// <summary>
/// <c>netwire serve</c>'s TLS options as users meet them: credentials that cannot be used stop
/// the start with exit 3 and the file's name, options that contradict each other are usage
/// errors (exit 2), a busy TLS port is named, and a TLS port alone serves no plaintext port.
/// </summary>
public sealed class ServeTlsCliTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static Task<ProcessResult> ServeAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--disable-ticketing", .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task ExpiredServerCertificate_ExitsWithSetupCode_NamingTheFile()
    {
        var result = await ServeAsync("--tls-port", "0", "--x509-dir", pki.Expired);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains(Path.Combine(pki.Expired, "server-cert.pem"), result.Stderr, StringComparison.Ordinal);
        Assert.Contains("expired on", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MismatchedKey_ExitsWithSetupCode_NamingTheKey()
    {
        var dir = pki.Copy(pki.Good);
        File.Copy(Path.Combine(dir, "client-key.pem"), Path.Combine(dir, "server-key.pem"), overwrite: true);
        var result = await ServeAsync("--tls-port", "0", "--x509-dir", dir);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains(Path.Combine(dir, "server-key.pem") + " is not the unencrypted private key of", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MigrationSourceWithoutClientCertificate_ExitsWithSetupCode_NamingIt()
    {
        var dir = pki.Copy(pki.Good);
        File.Delete(Path.Combine(dir, "client-cert.pem"));
        var result = await ServeAsync("--spice-port", "0", "--migration-x509-dir", dir);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains(Path.Combine(dir, "client-cert.pem") + " cannot be read", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--tls-port", "0")]
    [InlineData("--x509-dir", "/tmp")]
    [InlineData("--tls-channel", "main")]
    [InlineData("--tls-port", "70000", "--x509-dir", "/tmp")]
    [InlineData("--tls-port", "0", "--x509-dir", "/tmp", "--tls-ciphers", "HIGH:!aNULL")]
    [InlineData("--tls-port", "0", "--x509-dir", "/tmp", "--tls-channel", "mian")]
    [InlineData("--tls-port", "0", "--x509-dir", "/tmp", "--tls-channel", "main", "--plaintext-channel", "main")]
    public async Task ContradictoryOrIncompleteOptions_AreUsageErrors(params string[] args)
    {
        var result = await ServeAsync(args);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("netwire serve:", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BusyTlsPort_ExitsWithSetupCode_NamingTheTlsPort()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        holder.Listen();
        var port = ((IPEndPoint)holder.LocalEndPoint!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var result = await ServeAsync("--spice-port", "0", "--tls-port", port, "--x509-dir", pki.Good);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains($"cannot listen on TLS port 127.0.0.1:{port}", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TlsPortAlone_ServesNoPlaintextPort()
    {
        await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--disable-ticketing", "--tls-port", "0", "--x509-dir", pki.Good]);
        var line = await serve.WaitForLineAsync(l => l.Contains("SPICE server listening for TLS on 127.0.0.1:", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Contains(Path.Combine(pki.Good, "server-cert.pem"), line, StringComparison.Ordinal);
        Assert.DoesNotContain(serve.Lines, l => l.Text.Contains("SPICE server listening on", StringComparison.Ordinal));
        serve.Signal(2);
        Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }
}
