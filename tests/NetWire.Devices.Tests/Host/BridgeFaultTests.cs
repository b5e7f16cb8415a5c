using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// Faults under a running bridge: its TAP deleted, its status file's folder removed, the disk
/// under its capture full, its guest gone mid-frame. Each ends in a clear message and the
/// documented exit code, or a counted drop while the wire carries on; nothing is lost silently.
/// </summary>
[Trait("Category", "Host")]
public sealed class BridgeFaultTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nwfault-").FullName;

    public void Dispose()
    {
        ProcessRunner.RunAsync("umount", ["-l", Path.Combine(_dir, "small")], TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task TapDeletedUnderTheBridge_EndsItWithExitCode1AndAMessageNamingTheTap()
    {
        HostRequirements.RequireRoot();
        await using var ns = await NetNamespace.CreateAsync();
        var tap = "nwf" + Environment.ProcessId % 100000;
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{_dir}/g.sock", $"tap:{tap}", ns, _dir);
        await bridge.WaitForLogAsync($"TAP {tap} attached");
        (await ns.ExecShellAsync($"ip link set {tap} up && ip link del {tap}")).EnsureSuccess();

        var code = await bridge.Process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var output = bridge.Process.FormattedOutput;
        Assert.True(code == 1, $"exit {code}:\n{output}");
        Assert.Contains($"netwire bridge: TAP '{tap}' was deleted while NetWire was using it", bridge.Process.StderrLines);
        Assert.DoesNotContain(bridge.Process.StderrLines, l => l.Contains("Exception", StringComparison.Ordinal) || l.Contains(" fail: ", StringComparison.Ordinal) || l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StatusFileFolderRemoved_IsLoggedOnce_AndTheWireCarriesOn_AndWritesResumeWhenItIsBack()
    {
        var statusDir = Path.Combine(_dir, "status");
        Directory.CreateDirectory(statusDir);
        var statusPath = Path.Combine(statusDir, "status.json");
        await using var bridge = await StartBridgeAsync("--status-file", statusPath);
        await WaitForFileAsync(statusPath);
        Directory.Delete(statusDir, recursive: true);
        await WaitForLogAsync(bridge, "cannot be written");

        using (var guest = await StreamClient.ConnectAsync(Path.Combine(_dir, "g.sock")))
        {
            await WaitForLogAsync(bridge, "Guest guest connected");
        }

        Directory.CreateDirectory(statusDir);
        await WaitForLogAsync(bridge, "written again after");
        await WaitForFileAsync(statusPath);
        bridge.Terminate();
        Assert.Equal(0, await bridge.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(bridge.StderrLines, l => l.Contains("cannot be written", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DiskFullUnderTheCapture_CountsCaptureDropsWithTheError_AndTheWireCarriesOn()
    {
        HostRequirements.RequireRoot();
        var small = Path.Combine(_dir, "small");
        Directory.CreateDirectory(small);
        (await ProcessRunner.RunAsync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", small], TimeSpan.FromSeconds(10))).EnsureSuccess();
        await using var process = await StartBridgeAsync("--capture", Path.Combine(small, "wire.pcapng"), "--status-file", Path.Combine(_dir, "status.json"));
        var bridge = new StatusFile(Path.Combine(_dir, "status.json"));
        using var guest = await StreamClient.ConnectAsync(Path.Combine(_dir, "g.sock"));

        // 200 broadcast ARP requests of 1,000 bytes each: far more than 64 KiB of capture.
        var frame = new byte[1000];
        frame.AsSpan(0, 6).Fill(0xFF);
        byte[] source = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        source.CopyTo(frame, 6);
        frame[12] = 0x08;
        frame[13] = 0x06;
        for (var i = 0; i < 200; i++)
        {
            await guest.SendFrameAsync(frame);
        }

        var status = await bridge.WaitForStatusAsync(s => s.TryGetProperty("capture", out var c) && c.GetProperty("dropped").GetInt64() > 0 && c.TryGetProperty("error", out _));
        var capture = status.GetProperty("capture");
        Assert.Contains("space", capture.GetProperty("error").GetString(), StringComparison.OrdinalIgnoreCase);
        process.Terminate();
        Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var final = bridge.Read();
        var guestEnd = BridgeProcess.End(final, "guest");
        Assert.Equal(200, guestEnd.GetProperty("rx_frames").GetInt64());
        var written = final.GetProperty("capture").GetProperty("frames").GetInt64();
        var dropped = final.GetProperty("capture").GetProperty("dropped").GetInt64();
        Assert.True(written + dropped >= 200, $"every frame is either captured or counted: {written} + {dropped}");
    }

    [Fact]
    public async Task GuestKilledMidFrame_CountsATruncatedDrop_DeliversTheWholeFramesBefore_AndServesTheNextGuest()
    {
        var socketPath = Path.Combine(_dir, "g.sock");
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{socketPath}", "gateway", null, _dir);

        // A guest process that sends two whole broadcast ARP frames, then the length and half of
        // a third, and is killed (SIGKILL) before it can send the rest.
        const string guestScript = """
            import socket, struct, sys, time
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            frame = b"\xff" * 6 + b"\x52\x54\x00\x12\x34\x56" + b"\x08\x06" + bytes(46)
            s.sendall(struct.pack(">I", 60) + frame)
            s.sendall(struct.pack(">I", 60) + frame)
            s.sendall(struct.pack(">I", 60) + frame[:30])
            print("sent", flush=True)
            time.sleep(600)
            """;
        await using (var guest = ProcessRunner.Start("python3", ["-c", guestScript, socketPath]))
        {
            await guest.WaitForLineAsync(l => l == "sent", TimeSpan.FromSeconds(30));
            guest.Signal(9);
            await guest.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }

        await bridge.WaitForLogAsync("Guest guest disconnected: PeerClosed (closed mid-frame)");
        var status = await bridge.WaitForStatusAsync(s => BridgeProcess.End(s, "guest").GetProperty("drops").GetProperty("truncated").GetInt64() == 1);
        Assert.Equal(2, BridgeProcess.End(status, "guest").GetProperty("rx_frames").GetInt64());

        using (var next = await StreamClient.ConnectAsync(socketPath))
        {
            await next.SendFrameAsync(StreamClient.Frame(60, 7));
            await bridge.WaitForStatusAsync(s => BridgeProcess.End(s, "guest").GetProperty("rx_frames").GetInt64() == 3);
        }

        var final = await bridge.StopAsync();
        Assert.Equal(1, BridgeProcess.End(final, "guest").GetProperty("drops_total").GetInt64());
        Assert.DoesNotContain(bridge.Process.StderrLines, l => l.Contains("Exception", StringComparison.Ordinal) || l.Contains(" fail: ", StringComparison.Ordinal));
    }

    /// <summary><c>netwire bridge --guest stream:unix:DIR/g.sock --host gateway ARGS</c>, once it is up.</summary>
    private async Task<ManagedProcess> StartBridgeAsync(params string[] args)
    {
        var process = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "bridge", "--guest", $"stream:unix:{_dir}/g.sock", "--host", "gateway", .. args]);
        // The QEMU hint is logged once the guest socket listens.
        await WaitForLogAsync(process, "-netdev stream");
        return process;
    }

    private static Task<string> WaitForLogAsync(ManagedProcess process, string text) =>
        process.WaitForLineAsync(l => l.Contains(text, StringComparison.Ordinal), TimeSpan.FromSeconds(30));

    /// <summary>A status file polled until it says what a test waits for.</summary>
    private sealed class StatusFile(string path)
    {
        public System.Text.Json.JsonElement Read()
        {
            using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(path));
            return document.RootElement.Clone();
        }

        public async Task<System.Text.Json.JsonElement> WaitForStatusAsync(Func<System.Text.Json.JsonElement, bool> condition)
        {
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (true)
            {
                if (File.Exists(path) && Read() is var status && condition(status))
                {
                    return status;
                }

                await Task.Delay(200, guard.Token);
            }
        }
    }

    private static async Task WaitForFileAsync(string path)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!File.Exists(path))
        {
            await Task.Delay(100, guard.Token);
        }
    }
}
