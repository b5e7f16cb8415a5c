using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>A real <c>netwire serve</c> on 127.0.0.1 and a free port, logging at Debug.</summary>
internal sealed partial class ServeProcess : IAsyncDisposable
{
    private ServeProcess(ManagedProcess process, int port, int tlsPort = 0)
    {
        Process = process;
        Port = port;
        TlsPort = tlsPort;
    }

    public ManagedProcess Process { get; }

    /// <summary>The plaintext port; 0 without one.</summary>
    public int Port { get; }

    /// <summary>The TLS port; 0 without one.</summary>
    public int TlsPort { get; }

    /// <summary>
    /// A serve with a TLS port on <paramref name="x509Dir"/>'s certificate and, when
    /// <paramref name="plain"/>, a plaintext port as well.
    /// </summary>
    public static async Task<ServeProcess> StartTlsAsync(string x509Dir, bool plain, params string[] args)
    {
        string[] ports = plain ? ["--spice-port", "0"] : [];
        var process = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", .. ports, "--tls-port", "0", "--x509-dir", x509Dir, "--log-level", "Debug", .. args]);
        try
        {
            var port = 0;
            if (plain)
            {
                var line = await process.WaitForLineAsync(l => ListeningLine().IsMatch(l), TimeSpan.FromSeconds(60));
                port = int.Parse(ListeningLine().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
            }

            var tlsLine = await process.WaitForLineAsync(l => TlsListeningLine().IsMatch(l), TimeSpan.FromSeconds(60));
            return new ServeProcess(process, port, int.Parse(TlsListeningLine().Match(tlsLine).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public static async Task<ServeProcess> StartAsync(params string[] args)
    {
        var process = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--log-level", "Debug", .. args]);
        try
        {
            var line = await process.WaitForLineAsync(l => ListeningLine().IsMatch(l), TimeSpan.FromSeconds(60));
            return new ServeProcess(process, int.Parse(ListeningLine().Match(line).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary>Log lines so far that contain <paramref name="text"/>.</summary>
    public string[] LinesWith(string text) => Process.Lines.Select(l => l.Text).Where(l => l.Contains(text, StringComparison.Ordinal)).ToArray();

    public ValueTask DisposeAsync() => Process.DisposeAsync();

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();

    [GeneratedRegex(@"SPICE server listening for TLS on 127\.0\.0\.1:(\d+)")]
    private static partial Regex TlsListeningLine();
}

/// <summary>Runs tools/spice/gtk_client.py (spice-gtk 0.42 through PyGObject, headless).</summary>
internal static class GtkClient
{
    public const string Python = "/usr/bin/python3";

    public const string Typelib = "/usr/lib/x86_64-linux-gnu/girepository-1.0/SpiceClientGLib-2.0.typelib";

    public static void Require()
    {
        HostRequirements.RequireCommand(Python);
        HostRequirements.RequireFile(Typelib, "apt-get install gir1.2-spiceclientglib-2.0 python3-gi");
    }

    public static Task<ProcessResult> RunAsync(int port, string? password, int clients = 1, double seconds = 4) =>
        RunAsync(["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)], password, clients, seconds);

    /// <summary>Starts one client in the background with <paramref name="connection"/>; it runs <paramref name="seconds"/> at most.</summary>
    public static ManagedProcess Start(IEnumerable<string> connection, double seconds) =>
        ProcessRunner.Start("env", ["-u", "DISPLAY", "-u", "WAYLAND_DISPLAY", Python, Path.Combine(RepoPaths.Root, "tools", "spice", "gtk_client.py"), .. connection,
            "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

    /// <summary>Runs the client with <paramref name="connection"/> (--port, --tls-port, --ca-file, --cert-subject ...).</summary>
    public static Task<ProcessResult> RunAsync(IEnumerable<string> connection, string? password, int clients = 1, double seconds = 4)
    {
        List<string> args = [Path.Combine(RepoPaths.Root, "tools", "spice", "gtk_client.py"), .. connection,
            "--clients", clients.ToString(System.Globalization.CultureInfo.InvariantCulture), "--seconds", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        if (password is not null)
        {
            args.AddRange(["--password", password]);
        }

        // env -u: no display at all, as in CI.
        return ProcessRunner.RunAsync("env", ["-u", "DISPLAY", "-u", "WAYLAND_DISPLAY", Python, .. args], TimeSpan.FromSeconds(60 + seconds));
    }
}
