using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>
/// spice-gtk 0.42 (the library remote-viewer uses) against a real <c>netwire serve</c>:
/// ticket auth, no ticketing, refusals, a main channel that stays up across pings, two clients.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class SpiceGtkInteropTests
{
    [Fact]
    public async Task PasswordFromFile_MainChannelReachesInit_AndStaysUpAcrossPings()
    {
        GtkClient.Require();
        var dir = Directory.CreateTempSubdirectory("nwspice-").FullName;
        try
        {
            var file = Path.Combine(dir, "password");
            await File.WriteAllTextAsync(file, "correct horse\n", TestContext.Current.CancellationToken);
            await using var serve = await ServeProcess.StartAsync("--password-file", file);
            var result = await GtkClient.RunAsync(serve.Port, "correct horse", seconds: 4);
            Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
            Assert.Contains("opened=1 lost=0", result.Stdout, StringComparison.Ordinal);

            var up = Assert.Single(serve.LinesWith("main channel up"));
            var sessionId = SessionIdOf(up);
            Assert.Contains("mini header", up, StringComparison.Ordinal);
            Assert.NotEmpty(serve.LinesWith($"Session {sessionId}: ATTACH_CHANNELS"));
            Assert.True(serve.LinesWith($"Session {sessionId}: pong").Length >= 2, serve.Process.FormattedOutput);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task DisableTicketing_ClientWithoutPassword_Connects()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartAsync("--disable-ticketing");
        var result = await GtkClient.RunAsync(serve.Port, null, seconds: 2);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
    }

    [Fact]
    public async Task WrongPassword_IsRefusedWithAnAuthError()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartAsync("--password", "s3cret");
        var result = await GtkClient.RunAsync(serve.Port, "wrong", seconds: 10);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("error=error-auth", result.Stdout, StringComparison.Ordinal);
        // The server's log line may reach us a moment after the client has exited.
        await serve.Process.WaitForLineAsync(l => l.Contains("refused: PermissionDenied", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ExpiredPassword_IsRefusedWithAnAuthError()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartAsync("--password", "s3cret", "--password-expires", "now");
        var result = await GtkClient.RunAsync(serve.Port, "s3cret", seconds: 10);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("error=error-auth", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoClientsAtOnce_GetTheirOwnSessions_AndBothStayUp()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartAsync("--password", "s3cret");
        var result = await GtkClient.RunAsync(serve.Port, "s3cret", clients: 2, seconds: 3);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var sessions = serve.LinesWith("main channel up").Select(SessionIdOf).Distinct().ToArray();
        Assert.Equal(2, sessions.Length);
        foreach (var id in sessions)
        {
            Assert.NotEmpty(serve.LinesWith($"Session {id}: pong"));
        }
    }

    private static string SessionIdOf(string line) => SessionId().Match(line).Groups[1].Value;

    [GeneratedRegex(@"Session (\d+):")]
    private static partial Regex SessionId();
}
