using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Cli.Tests;

/// <summary>
/// SIGINT and SIGTERM stop every long-running verb cleanly: exit code 0, and nothing on
/// standard error that reads like a crash (no <c>fail:</c> or <c>crit:</c> log line, no
/// exception or stack trace). Each verb is stopped while it has work in hand: serve with a
/// linked spice-gtk client and a silent connection in the link stage, the control socket, a capture and a status file; bridge with a guest
/// connected; replay mid-file; tunnel-client linked to a serve; run with its command running (and its
/// status file); slirp4netns with its API socket and a forward.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class CleanStopTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-stop-").FullName;

    public static TheoryData<int> Signals => new() { Sigint, Sigterm };

    private const int Sigint = 2;
    private const int Sigterm = 15;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task Serve_WithALinkedClient_StopsCleanly(int signal)
    {
        await using var serve = Netwire("serve", "--guest", $"stream:unix:{_dir}/guest.sock", "--spice-port", "0", "--password", "s3cret",
            "--qmp", $"unix:{_dir}/qmp.sock", "--capture", $"{_dir}/wire.pcapng", "--status-file", $"{_dir}/status.json", "--tunnel");
        var port = await SpicePortAsync(serve);
        await using var client = ProcessRunner.Start("env", ["-u", "DISPLAY", "-u", "WAYLAND_DISPLAY", "/usr/bin/python3",
            Path.Combine(RepoPaths.Root, "tools", "spice", "gtk_client.py"), "--port", port.ToString(CultureInfo.InvariantCulture), "--password", "s3cret", "--seconds", "60"]);
        await serve.WaitForLineAsync(l => l.Contains("main channel up", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        using var silent = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await silent.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), TestContext.Current.CancellationToken);
        await StopAndCheckAsync(serve, signal);
    }

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task Bridge_WithAGuestConnected_StopsCleanly(int signal)
    {
        await using var bridge = Netwire("bridge", "--guest", $"stream:unix:{_dir}/guest.sock", "--host", "gateway", "--capture", $"{_dir}/wire.pcapng", "--status-file", $"{_dir}/status.json");
        await bridge.WaitForLineAsync(l => l.Contains("-netdev stream", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        using var guest = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await guest.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint($"{_dir}/guest.sock"), TestContext.Current.CancellationToken);
        await bridge.WaitForLineAsync(l => l.Contains("Guest guest connected", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        await StopAndCheckAsync(bridge, signal);
    }

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task Replay_MidFile_StopsCleanly(int signal)
    {
        var capture = Path.Combine(RepoPaths.Root, "captures", "guest-tcp.pcapng");
        await using var replay = Netwire("replay", capture, "--into", "null", "--pps", "20", "--loop", "1000");
        await replay.WaitForLineAsync(l => l.Contains("frames/s", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await StopAndCheckAsync(replay, signal);
    }

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task TunnelClient_Linked_StopsCleanly_AndSoDoesTheServe(int signal)
    {
        await using var serve = Netwire("serve", "--guest", $"stream:unix:{_dir}/guest.sock", "--spice-port", "0", "--password", "s3cret", "--tunnel");
        var port = await SpicePortAsync(serve);
        await using var client = Netwire("tunnel-client", "--server", $"127.0.0.1:{port}", "--password", "s3cret", "--service", "web=127.0.0.1:9,port=80");
        await client.WaitForLineAsync(l => l.StartsWith("service web ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await StopAndCheckAsync(client, signal);
        await StopAndCheckAsync(serve, signal);
    }

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task Run_WithItsCommandRunning_StopsCleanly(int signal)
    {
        HostRequirements.RequireRoot();
        var status = Path.Combine(_dir, "status.json");
        await using var run = Netwire("run", "--status-file", status, "--", "sh", "-c", "echo command-ready; exec sleep 120");
        await run.WaitForLineAsync(l => l.Contains("command-ready", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await StopAndCheckAsync(run, signal);

        // The status file's last write is the stopped state, with the gateway's counters.
        using var document = System.Text.Json.JsonDocument.Parse(await File.ReadAllBytesAsync(status, TestContext.Current.CancellationToken));
        Assert.Equal("stopped", document.RootElement.GetProperty("state").GetString());
        Assert.Contains(document.RootElement.GetProperty("ends").EnumerateArray(), e => e.TryGetProperty("gateway", out _));
    }

    [Theory]
    [MemberData(nameof(Signals))]
    public async Task Slirp4netns_WithItsApiSocketAndAForward_StopsCleanly(int signal)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nsenter");
        await using var ns = await NetNamespace.CreateAsync();
        var api = Path.Combine(_dir, "api.sock");
        await using var slirp = ProcessRunner.Start(
            "dotnet",
            [RepoPaths.NetwireDll, "slirp4netns", "-c", "-6", "-a", api, "--netns-type=path", $"/run/netns/{ns.Name}", "tap0"],
            new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Debug" });
        await slirp.WaitForLineAsync(l => l.Contains("Ready: tap0", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var added = await Slirp.Slirp4netnsNamespaceTests.RequestAsync(api, "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": 0, \"guest_port\": 80}}");
        Assert.NotNull(added["error"]);
        int port;
        using (var probe = new System.Net.Sockets.UdpClient(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            port = ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
        }

        Assert.NotNull((await Slirp.Slirp4netnsNamespaceTests.RequestAsync(api, "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"udp\", \"host_addr\": \"127.0.0.1\", \"host_port\": " + port + ", \"guest_port\": 80}}"))["return"]);
        await StopAndCheckAsync(slirp, signal);
        Assert.False(File.Exists(api));
    }

    /// <summary>Starts <c>netwire VERB --log-level Debug ARGS</c> (the level before ARGS: run's command follows "--").</summary>
    private static ManagedProcess Netwire(string verb, params string[] args) =>
        ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, verb, "--log-level", "Debug", .. args]);

    private static async Task<int> SpicePortAsync(ManagedProcess serve)
    {
        var line = await serve.WaitForLineAsync(l => ListeningLine().IsMatch(l), TimeSpan.FromSeconds(60));
        return int.Parse(ListeningLine().Match(line).Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>Signals the verb, waits for it, and checks its exit code and standard error.</summary>
    private static async Task StopAndCheckAsync(ManagedProcess process, int signal)
    {
        process.Signal(signal);
        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var output = process.FormattedOutput;
        Assert.True(exit == 0, $"exit {exit} after signal {signal}:\n{output}");
        foreach (var line in process.StderrLines)
        {
            Assert.False(CrashLine().IsMatch(line), $"a crash-like line after signal {signal}: {line}\n{output}");
        }
    }

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();

    /// <summary>A fail or crit log line, an exception's type name, or a stack frame.</summary>
    [GeneratedRegex(@"\b(fail|crit): |Exception\b|^\s+at \S+\(")]
    private static partial Regex CrashLine();
}
