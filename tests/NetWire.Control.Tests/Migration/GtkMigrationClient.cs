using System.Globalization;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// tools/spice/gtk_client.py (spice-gtk 0.42 through PyGObject, headless) as a long-running
/// client that follows a migration and exits a second after it finished.
/// </summary>
internal sealed partial class GtkMigrationClient : IAsyncDisposable
{
    private const string Python = "/usr/bin/python3";
    private const string Typelib = "/usr/lib/x86_64-linux-gnu/girepository-1.0/SpiceClientGLib-2.0.typelib";

    private GtkMigrationClient(ManagedProcess process) => Process = process;

    public ManagedProcess Process { get; }

    public static void Require()
    {
        HostRequirements.RequireCommand(Python);
        HostRequirements.RequireFile(Typelib, "apt-get install gir1.2-spiceclientglib-2.0 python3-gi");
    }

    /// <summary>Starts the client on <paramref name="port"/> and waits until its main channel opened.</summary>
    public static Task<GtkMigrationClient> ConnectAsync(int port, string password, double seconds = 90) =>
        ConnectAsync(["--port", port.ToString(CultureInfo.InvariantCulture)], $"main opened port={port}", password, seconds);

    /// <summary>Starts the client on a TLS port only, checking the server against <paramref name="caFile"/>, and waits until its main channel opened there.</summary>
    public static Task<GtkMigrationClient> ConnectTlsAsync(int tlsPort, string caFile, string password, double seconds = 90) =>
        ConnectAsync(["--tls-port", tlsPort.ToString(CultureInfo.InvariantCulture), "--ca-file", caFile], $"server-port={tlsPort}", password, seconds);

    private static async Task<GtkMigrationClient> ConnectAsync(string[] connection, string opened, string password, double seconds)
    {
        var script = Path.Combine(RepoPaths.Root, "tools", "spice", "gtk_client.py");
        var process = ProcessRunner.Start("env", ["-u", "DISPLAY", "-u", "WAYLAND_DISPLAY", Python, script, .. connection, "--password", password,
            "--seconds", seconds.ToString(CultureInfo.InvariantCulture), "--stop-after-migration", "1"]);
        try
        {
            await process.WaitForLineAsync(l => l.Contains("main opened", StringComparison.Ordinal) && l.Contains(opened, StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            return new GtkMigrationClient(process);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits for the client's RESULT line and exit; returns (exit code, server port its main channel ended on, states seen).</summary>
    public async Task<(int ExitCode, int Port, string States, string Line)> ResultAsync()
    {
        var line = await Process.WaitForLineAsync(l => l.Contains("RESULT client=0", StringComparison.Ordinal), TimeSpan.FromSeconds(120));
        var exit = await Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var match = ResultLine().Match(line);
        Assert.True(match.Success, line);
        return (exit, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), match.Groups[2].Value, line);
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();

    [GeneratedRegex(@"server-port=(\d+) states=(\S+)")]
    private static partial Regex ResultLine();
}
