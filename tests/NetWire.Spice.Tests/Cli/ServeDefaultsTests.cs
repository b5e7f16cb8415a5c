using System.Net;
using System.Text.RegularExpressions;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Cli;

/// <summary>
/// <c>netwire serve</c> with no network or password options (the README's first command): the
/// guest socket on the default path bridged to the user-mode gateway, and a generated SPICE
/// password in a file only its owner can read, which links while a wrong one is refused.
/// </summary>
public sealed partial class ServeDefaultsTests
{
    [Fact]
    public async Task NoOptions_GatewayOnDefaultSocket_AndAGeneratedPasswordThatLinks()
    {
        await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--spice-port", "0"]);
        var passwordLine = await serve.WaitForLineAsync(l => l.Contains("a random one is in", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var path = PasswordPath().Match(passwordLine).Groups[1].Value;
        var bridge = await serve.WaitForLineAsync(l => l.Contains("Bridge up", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        Assert.Contains("gateway 10.0.2.0/24 via 10.0.2.2", bridge, StringComparison.Ordinal);

        // The guest socket is bound by the time "Bridge up" is logged: QEMU 7.2's stream client
        // connects once and does not retry, so a guest started on that line must find it.
        var socket = Path.Combine(Path.GetDirectoryName(path)!, Path.GetFileName(path).Replace("-spice-password", ".sock", StringComparison.Ordinal));
        Assert.True(File.Exists(socket), socket);
        var hint = await serve.WaitForLineAsync(l => l.Contains("Attach a QEMU guest", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var listening = await serve.WaitForLineAsync(l => l.Contains("SPICE server listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var port = int.Parse(ListeningPort().Match(listening).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var password = (await File.ReadAllTextAsync(path)).Trim();
        Assert.Matches("^[0-9a-f]{24}$", password);
        Assert.Contains($"addr.path={socket}", hint, StringComparison.Ordinal);

        var server = new IPEndPoint(IPAddress.Loopback, port);
        await using (var wrong = await RawSpiceClient.ConnectAsync(server))
        {
            Assert.Equal(SpiceLinkErr.PermissionDenied, await wrong.LinkAsync(0, (byte)SpiceChannelType.Main, "not-" + password));
        }

        await using (var right = await RawSpiceClient.ConnectAsync(server))
        {
            Assert.Equal(SpiceLinkErr.Ok, await right.LinkAsync(0, (byte)SpiceChannelType.Main, password));
        }

        serve.Terminate();
        Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    [GeneratedRegex(@"a random one is in (\S+)")]
    private static partial Regex PasswordPath();

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningPort();
}
