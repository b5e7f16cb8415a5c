using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// The whole-VM migration of docs/migration.md ("Whole-VM migration") with a download in its
/// middle, shared by <see cref="VmMigrationTests"/> (through the gateway) and
/// <see cref="VmTunnelMigrationTests"/> (through a tunnel service): a server on the host's
/// loopback sends 12 MiB at about 1 MB/s, the last 2 MiB only once the move is done; tcpdump
/// watches its port; a QEMU guest under TCG on appliance A fetches the bytes with nc; and
/// tools/migrate-vm.py moves the VM to a second QEMU and A to B. The tests choose the
/// appliances' options and the address the guest fetches from, and check what the move reports.
/// </summary>
internal sealed class VmDownloadRun : IAsyncDisposable
{
    /// <summary>Bytes the guest downloads.</summary>
    public const int PayloadBytes = 12 << 20;

    private const int HeldBackBytes = 2 << 20;

    /// <summary>The bound on every wait: TCG on a busy 2-core machine is slow.</summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(180);

    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<(string Name, ManagedProcess Process)> _logged = [];
    private readonly List<string> _appliances = [];
    private readonly TaskCompletionSource _migrated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
    private readonly Progress _progress = new();
    private readonly byte[] _payload = new byte[PayloadBytes];
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly string _dir;
    private Task _server = Task.CompletedTask;
    private ManagedProcess? _capture;
    private QemuGuest? _source;
    private QemuGuest? _target;

    private VmDownloadRun(string dir)
    {
        _dir = dir;
    }

    /// <summary>The loopback server's port.</summary>
    public int ServerPort => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Checks the host, starts the server and tcpdump on its port.</summary>
    public static async Task<VmDownloadRun> StartAsync()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("qemu-system-x86_64");
        HostRequirements.RequireCommand("nft");
        HostRequirements.RequireCommand("tcpdump");
        HostRequirements.RequireCommand("python3");
        HostRequirements.RequireGuestImage();
        var run = new VmDownloadRun(Directory.CreateTempSubdirectory("nwvm-").FullName);
        try
        {
            new Random(12).NextBytes(run._payload);
            run._listener.Start();
            run._server = ServeAsync(run._listener, run._payload, run._progress, run._migrated.Task, run._stop.Token);
            run._capture = run.Own(ProcessRunner.Start("tcpdump", ["-i", "lo", "-n", "-s", "96", "-U", "-w", run.Pcap, $"tcp port {run.ServerPort}"]));
            await run._capture.WaitForLineAsync(l => l.Contains("listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }

        return run;
    }

    /// <summary>
    /// Starts <c>netwire serve</c> <paramref name="name"/> with the guest's NIC on a unix stream
    /// socket, a SPICE port, a control socket and <paramref name="options"/>; a target (<paramref name="incoming"/>)
    /// waits for the state. Returns once its control socket answers.
    /// </summary>
    public async Task<VmAppliance> StartApplianceAsync(string name, bool incoming, params string[] options)
    {
        List<string> args = [
            RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Path.Combine(_dir, name + "-guest.sock")}", "--spice-port", "0",
            "--qmp", $"unix:{Qmp(name)}", "--log-level", "Information", .. options];
        if (incoming)
        {
            args.AddRange(["--incoming", "tcp:127.0.0.1:0"]);
        }

        var process = Track(name, ProcessRunner.Start("dotnet", args));
        _appliances.Add(name);
        var incomingPort = incoming ? await ApplianceOutput.PortAsync(process, ApplianceOutput.IncomingListening(), Wait) : 0;
        var spice = await ApplianceOutput.PortAsync(process, ApplianceOutput.SpiceListening(), Wait);
        await ApplianceOutput.ControlSocketAsync(process, Wait);
        return new VmAppliance(name, process, spice, incomingPort);
    }

    /// <summary>Owns <paramref name="process"/> (ended with the run) and shows its output in <see cref="Logs"/>.</summary>
    public ManagedProcess Track(string name, ManagedProcess process)
    {
        _logged.Add((name, process));
        return Own(process);
    }

    /// <summary>Boots the guest on <paramref name="appliance"/>; it connects to <paramref name="host"/>:<paramref name="port"/> once it has its address.</summary>
    public async Task StartGuestAsync(VmAppliance appliance, string host, int port)
    {
        // nc's stdin is a FIFO nobody writes, so it sends nothing, keeps its side open and reads to EOF.
        // Every 5 s the guest says how much it has: a stall report then tells a guest that stopped
        // running from one that runs and gets no bytes.
        var script = $$"""
            . /lib/nw.sh
            mkfifo /tmp/hold
            : > /tmp/f
            (while sleep 5; do mark TICK $(wc -c < /tmp/f); done) &
            mark READY
            nc {{host}} {{port}} <> /tmp/hold > /tmp/f
            rc=$?
            mark DOWNLOAD rc=$rc len=$(wc -c < /tmp/f) sha=$(sha256sum /tmp/f | cut -d' ' -f1)
            """;
        _source = Own(QemuGuest.Start(Guest(appliance, null) with { TestScript = script }));
        await _source.WaitForMarkerAsync("READY", Wait);
    }

    /// <summary>
    /// Once 3 MiB of the download went out, starts the target QEMU on <paramref name="target"/> and
    /// runs tools/migrate-vm.py with <paramref name="options"/>; checks that it moved everything and
    /// returns its <c>netwire</c> object (NetWire's <c>query-migrate</c> on the source, flows included).
    /// </summary>
    /// <remarks>
    /// QEMU copies the VM paused (<c>--pause-first</c>): under TCG on a loaded host, QEMU 7.2's
    /// live pre-copy now and then resumed the guest with corrupted memory, a kernel oops right
    /// after the move (docs/migration.md, "Whole-VM migration"). NetWire's part of the move is
    /// the same either way: it starts once QEMU reports <c>completed</c>, with the source paused.
    /// </remarks>
    public async Task<JsonElement> MigrateAsync(VmAppliance source, VmAppliance target, params string[] options)
    {
        await _progress.WaitForAsync(3 << 20, Wait);
        var qemuPort = FreePort();
        _target = Own(QemuGuest.Start(Guest(target, _source!.Initrd) with { Incoming = $"tcp:127.0.0.1:{qemuPort}" }));
        var run = await ProcessRunner.RunAsync("python3", [
            Path.Combine(RepoPaths.Root, "tools", "migrate-vm.py"), "--json",
            "--qemu-source", Qmp("qemu-" + source.Name), "--qemu-target", Qmp("qemu-" + target.Name), "--qemu-uri", $"tcp:127.0.0.1:{qemuPort}",
            "--netwire-source", Qmp(source.Name), "--netwire-target", Qmp(target.Name), "--netwire-uri", $"tcp:127.0.0.1:{target.Incoming}",
            "--pause-first", .. options,
        ], Wait);
        Assert.True(run.ExitCode == 0, $"migrate-vm: {run.Stdout} {run.Stderr}\n{Logs()}");
        TestContext.Current.TestOutputHelper?.WriteLine($"migrate-vm: {run.Stdout}");
        using var result = JsonDocument.Parse(run.Stdout);
        var netwire = result.RootElement.GetProperty("netwire").Clone();
        Assert.True(netwire.GetProperty("status").GetString() == "completed", $"{run.Stdout}\n{Logs()}");
        Assert.Equal("target", result.RootElement.GetProperty("resumed").GetString());
        return netwire;
    }

    /// <summary>
    /// Lets the server send its last bytes; the guest, now on the target, ends its download with
    /// every byte (length and sha256), the server sees it close, and tcpdump saw the connection
    /// open on the server's port and no RST there.
    /// </summary>
    public async Task AssertDownloadCompleteAsync()
    {
        _migrated.SetResult();
        string done;
        try
        {
            done = await _target!.WaitForMarkerAsync("DOWNLOAD", Wait);
        }
        catch (TimeoutException timeout)
        {
            throw new TimeoutException($"{timeout.Message}\n{await StallReportAsync()}", timeout);
        }

        Assert.True(done == $"rc=0 len={PayloadBytes} sha={Convert.ToHexStringLower(SHA256.HashData(_payload))}", $"{done}\n{Logs()}");
        await _server.WaitAsync(Wait);

        _capture!.Terminate();
        await _capture.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var opens = await ProcessRunner.RunAsync("tcpdump", ["-r", Pcap, "-n", "tcp[tcpflags] & tcp-syn != 0"], TimeSpan.FromSeconds(60));
        Assert.True(opens.Stdout.Trim().Length > 0, $"tcpdump saw no connection to the server: {opens.Stderr}");
        var resets = await ProcessRunner.RunAsync("tcpdump", ["-r", Pcap, "-n", "tcp[tcpflags] & tcp-rst != 0"], TimeSpan.FromSeconds(60));
        Assert.True(resets.Stdout.Trim().Length == 0, $"RSTs on the server's port: {resets.Stdout}\n{Logs()}");
    }

    /// <summary>
    /// What a stalled download leaves to look at: the server's progress, the last segments on the
    /// server's port, the target appliance's wire counters, and every tracked process's output.
    /// </summary>
    private async Task<string> StallReportAsync()
    {
        var report = new System.Text.StringBuilder();
        report.AppendLine($"server: {_progress.Bytes} of {PayloadBytes} bytes handed to its socket, finished {_server.IsCompleted}");
        try
        {
            var tail = await ProcessRunner.RunAsync("tcpdump", ["-r", Pcap, "-n", "-tt"], TimeSpan.FromSeconds(60));
            var lines = tail.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            report.AppendLine($"tcpdump on the server's port, last 30 of {lines.Length} segments:");
            foreach (var line in lines.TakeLast(30))
            {
                report.AppendLine(line);
            }
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or IOException)
        {
            report.AppendLine($"tcpdump: {e.Message}");
        }

        foreach (var appliance in _appliances)
        {
            try
            {
                var wire = await QmpMigration.CommandAsync(Qmp(appliance), "query-wire", "{}", TimeSpan.FromSeconds(10));
                report.AppendLine($"{appliance} query-wire: {wire.ToJsonString()}");
            }
            catch (Exception e) when (e is TimeoutException or OperationCanceledException or SocketException or IOException)
            {
                report.AppendLine($"{appliance} query-wire: {e.Message}");
            }
        }

        report.AppendLine("source guest's serial console, last 10 lines:");
        foreach (var line in _source!.SerialLines.TakeLast(10))
        {
            report.AppendLine(line);
        }

        report.Append(Logs());
        return report.ToString();
    }

    /// <summary>The output of the appliances and the other tracked processes, for failure messages.</summary>
    public string Logs() => string.Join('\n', _logged.Select(p => $"{p.Name}:\n{p.Process.FormattedOutput}"));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        _listener.Dispose();
        await Task.WhenAny(_server);
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string Pcap => Path.Combine(_dir, "lo.pcap");

    private string Qmp(string name) => Path.Combine(_dir, name + ".qmp");

    private QemuGuestOptions Guest(VmAppliance appliance, string? initrd) => new()
    {
        Netdev = $"stream,id=n0,server=off,addr.type=unix,addr.path={Path.Combine(_dir, appliance.Name + "-guest.sock")}",
        KernelArgs = "nw.ip=dhcp ipv6.disable=1",
        Initrd = initrd,
        QmpSocket = Qmp("qemu-" + appliance.Name),
    };

    private T Own<T>(T owned)
        where T : IAsyncDisposable
    {
        _owned.Add(owned);
        return owned;
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    /// <summary>Sends the payload at about 1 MB/s (64 KiB every 64 ms); the last part only after the migration.</summary>
    private static async Task ServeAsync(TcpListener listener, byte[] payload, Progress progress, Task migrated, CancellationToken cancellationToken)
    {
        using var client = await listener.AcceptSocketAsync(cancellationToken);
        const int Chunk = 64 * 1024;
        for (var at = 0; at < payload.Length; at += Chunk)
        {
            if (at == payload.Length - HeldBackBytes)
            {
                await migrated.WaitAsync(cancellationToken);
            }

            var sent = 0;
            while (sent < Chunk)
            {
                sent += await client.SendAsync(payload.AsMemory(at + sent, Chunk - sent), SocketFlags.None, cancellationToken);
            }

            progress.Report(at + Chunk);
            await Task.Delay(64, cancellationToken);
        }

        client.Shutdown(SocketShutdown.Send);

        // The guest's nc holds its side open; the server waits for it to close, then closes too.
        var buffer = new byte[1024];
        while (await client.ReceiveAsync(buffer, SocketFlags.None, cancellationToken) > 0)
        {
        }
    }

    /// <summary>Bytes the server has handed to its socket, for waiting on.</summary>
    private sealed class Progress
    {
        private readonly Lock _gate = new();
        private readonly List<(long Bytes, TaskCompletionSource Reached)> _waiters = [];
        private long _bytes;

        public long Bytes
        {
            get
            {
                lock (_gate)
                {
                    return _bytes;
                }
            }
        }

        public void Report(long bytes)
        {
            lock (_gate)
            {
                _bytes = bytes;
                foreach (var (want, reached) in _waiters)
                {
                    if (bytes >= want)
                    {
                        reached.TrySetResult();
                    }
                }
            }
        }

        public Task WaitForAsync(long bytes, TimeSpan timeout)
        {
            lock (_gate)
            {
                if (_bytes >= bytes)
                {
                    return Task.CompletedTask;
                }

                var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.Add((bytes, reached));
                return reached.Task.WaitAsync(timeout);
            }
        }
    }
}
