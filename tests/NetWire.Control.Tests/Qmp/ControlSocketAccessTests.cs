using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Control.Tests.Qmp;

/// <summary>
/// The control socket has no authentication of its own: its unix path is created readable and
/// writable by the owner only, and a tcp: socket off loopback is started with a warning.
/// </summary>
public sealed class ControlSocketAccessTests
{
    [Fact]
    public async Task UnixSocket_IsOwnerOnly()
    {
        await using var harness = ControlHarness.Start();
        var path = ((UnixDomainSocketEndPoint)harness.Endpoint.EndPoint).ToString();
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        await using var client = await harness.ConnectAsync();
        Reply.Ok(await client.NegotiateAsync(TestContext.Current.CancellationToken));
    }

    [Theory]
    [InlineData("tcp:0.0.0.0:0", true)]
    [InlineData("tcp:127.0.0.1:0", false)]
    public async Task TcpSocket_OffLoopback_WarnsThatItHasNoAuthentication(string spec, bool warns)
    {
        await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--disable-ticketing", "--qmp", spec]);
        await serve.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        serve.Signal(2);
        Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(warns, serve.Lines.Any(l => l.Text.Contains($"Control socket {spec} is not on a loopback address and has no authentication", StringComparison.Ordinal)));
    }
}
