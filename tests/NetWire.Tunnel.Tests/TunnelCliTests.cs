using System.Net;
using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests;

/// <summary><c>netwire serve --tunnel</c> and <c>netwire tunnel-client</c> as processes.</summary>
public sealed class TunnelCliTests
{
    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task ServeWithTunnel_ClientPrintsTheVirtualIpOfEachService()
    {
        var directory = Directory.CreateTempSubdirectory("nwtun-cli-");
        try
        {
            var password = Path.Combine(directory.FullName, "pw");
            await File.WriteAllTextAsync(password, "cli-secret\n", TestContext.Current.CancellationToken);
            var port = FreePort();
            await using var serve = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Path.Combine(directory.FullName, "guest.sock")}",
                "--tunnel", "--password-file", password, "--spice-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await serve.WaitForLineAsync(line => line.Contains("listening", StringComparison.OrdinalIgnoreCase), TimeSpan.FromSeconds(60));
            await using var client = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{port}", "--password-file", password,
                "--service", "web=127.0.0.1:8080,port=80", "--service", "mail=127.0.0.1:25", "--service", "printer=192.0.2.7:631,print"]);
            var web = await client.WaitForLineAsync(l => l.StartsWith("service web ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            var mail = await client.WaitForLineAsync(l => l.StartsWith("service mail ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            var printer = await client.WaitForLineAsync(l => l.StartsWith("service printer ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            Assert.Equal("service web 10.0.2.31:80 -> 127.0.0.1:8080", web);
            Assert.Equal("service mail 10.0.2.31:25 -> 127.0.0.1:25", mail);
            Assert.Equal("service printer 10.0.2.32:631 -> 192.0.2.7:631", printer);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task WrongPassword_EndsTheClientWithExit1()
    {
        var port = FreePort();
        var directory = Directory.CreateTempSubdirectory("nwtun-cli-");
        try
        {
            await using var serve = ProcessRunner.Start("dotnet", [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Path.Combine(directory.FullName, "guest.sock")}",
                "--tunnel", "--password", "right", "--spice-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await serve.WaitForLineAsync(line => line.Contains("listening", StringComparison.OrdinalIgnoreCase), TimeSpan.FromSeconds(60));
            var result = await NetwireAsync("tunnel-client", "--server", $"127.0.0.1:{port}", "--password", "wrong", "--service", "a=127.0.0.1:1");
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("PermissionDenied", result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("--server", "nohostport", "--service", "a=127.0.0.1:80")]
    [InlineData("--server", "127.0.0.1:5930", "--service", "a=127.0.0.1")]
    [InlineData("--server", "127.0.0.1:5930", "--service", "=127.0.0.1:80")]
    [InlineData("--server", "127.0.0.1:5930", "--service", "a=127.0.0.1:80,port=0")]
    [InlineData("--server", "127.0.0.1:5930", "--service", "a=127.0.0.1:80,color=red")]
    [InlineData("--server", "127.0.0.1:5930", "--service", "a=127.0.0.1:80", "--service", "a=127.0.0.1:81")]
    [InlineData("--server", "127.0.0.1:5930", "--password", "x", "--password-file", "/nonexistent", "--service", "a=127.0.0.1:80")]
    public async Task BadClientArguments_ExitWithUsage(params string[] args)
    {
        var result = await NetwireAsync(["tunnel-client", .. args]);
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("netwire tunnel-client: ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeTunnelWithoutTheGateway_IsAUsageError()
    {
        var result = await NetwireAsync("serve", "--guest", "none", "--tunnel", "--disable-ticketing");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--tunnel needs the user-mode gateway", result.Stderr, StringComparison.Ordinal);
    }
}
