using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests.Host;

/// <summary>
/// <c>netwire tunnel-client --tls --ca-file F</c> as a separate process against the SPICE TLS
/// port: curl in a namespace on the user-mode gateway fetches a file through the service's
/// virtual IP, both of the client's channels run over TLS; a client given another CA stops with
/// exit 1 and says why, without retrying.
/// </summary>
[Trait("Category", "Host")]
public sealed class TunnelTlsTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    [Fact]
    public async Task Curl_FetchesThroughTheVirtualIp_OverTls()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("curl");
        HostRequirements.RequireCommand("python3");
        var directory = Directory.CreateTempSubdirectory("nwtuntls-").FullName;
        try
        {
            var data = new byte[5 * 1024 * 1024];
            new Random(13).NextBytes(data);
            await File.WriteAllBytesAsync(Path.Combine(directory, "file"), data);
            var passwordFile = Path.Combine(directory, "password");
            await File.WriteAllTextAsync(passwordFile, TunnelServer.Password + "\n");

            GuestNamespace? guest = null;
            await using var server = TunnelServer.Start(guestAddress: () => guest?.Gateway.GuestIp, x509Dir: pki.Good);
            await using (guest = await GuestNamespace.StartAsync(server.Network))
            {
                var httpPort = FreePort();
                await using var http = ProcessRunner.Start("python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                await http.WaitForLineAsync(line => line.Contains("Serving HTTP", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                await using var client = ProcessRunner.Start("dotnet", [
                    RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{server.TlsEndPoint.Port}", "--tls", "--ca-file", pki.Pki.CaCert,
                    "--password-file", passwordFile, "--service", $"web=127.0.0.1:{httpPort},port=80"]);
                var line = await client.WaitForLineAsync(l => l.StartsWith("service web ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                var address = line.Split(' ')[2];

                var result = await guest.Namespace.ExecShellAsync($"curl -sS --max-time 120 http://{address}/file | sha256sum", TimeSpan.FromSeconds(180));
                Assert.True(result.Succeeded, result.Stdout + result.Stderr);
                Assert.StartsWith(Convert.ToHexStringLower(SHA256.HashData(data)), result.Stdout.Trim(), StringComparison.Ordinal);

                var channels = server.Server.LinkedChannels;
                Assert.Equal(2, channels.Count);
                Assert.All(channels, c => Assert.True(c.Tls));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ClientWithAnotherCa_StopsWithExit1_SayingTheCertificateDoesNotVerify()
    {
        await using var server = TunnelServer.Start(x509Dir: pki.Good);
        var result = await ProcessRunner.RunAsync("dotnet", [
            RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{server.TlsEndPoint.Port}", "--tls", "--ca-file", pki.Foreign.CaCert,
            "--password", TunnelServer.Password, "--service", "web=127.0.0.1:9,port=80"], TimeSpan.FromSeconds(60));
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("does not verify against the CA", result.Stderr, StringComparison.Ordinal);
        Assert.Empty(server.Server.Sessions.Snapshot());
    }

    [Theory]
    [InlineData("--ca-file", "/dev/null")]
    [InlineData("--tls")]
    [InlineData("--cert-subject", "CN=x")]
    public async Task IncompleteTlsOptions_AreUsageErrors(params string[] args)
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "tunnel-client", "--server", "127.0.0.1:1", "--service", "web=127.0.0.1:9", .. args], TimeSpan.FromSeconds(60));
        Assert.Equal(2, result.ExitCode);
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
