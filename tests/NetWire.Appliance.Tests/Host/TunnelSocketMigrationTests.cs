using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// Tunnel sockets move with the appliance (docs/migration.md, "Tunnel sockets"): a namespace
/// peer on the TAP of <c>netwire serve --tunnel</c> A downloads from and uploads to services that
/// a <c>netwire tunnel-client</c> process publishes, while A migrates to B (the client following
/// MIGRATE_BEGIN / MIGRATE_END). Both transfers end with their exact bytes, both tunnel sockets
/// moved, and no RST on the guest's or the services' side. A client without the migration cap
/// gets its connections reset instead, cleanly and counted.
/// </summary>
[Trait("Category", "Host")]
public sealed class TunnelSocketMigrationTests
{
    private const string Tap = "nwt0";
    private const string Password = "s3cret";
    private const int Size = 12 * 1024 * 1024;
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(120);

    /// <summary>
    /// The services (source: sends the data paced, then closes; sink: reads to EOF and answers
    /// "LENGTH SHA256") and the guest's two ends (fetch: reads to EOF into a file; send: sends
    /// the data paced, then reads the answer). Each guest end says when an eighth went through.
    /// </summary>
    private const string Helper = """
        import hashlib, socket, sys, time

        def paced(connection, data, rate, told=None):
            start, sent = time.monotonic(), 0
            while sent < len(data):
                sent += connection.send(data[sent:sent + 16384])
                if told and sent >= len(data) // 8:
                    print(told, flush=True)
                    told = None
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

        mode = sys.argv[1]
        if mode in ("source", "sink"):
            listener = socket.create_server(("127.0.0.1", int(sys.argv[2])))
            print(mode + " ready", flush=True)
            while True:
                connection, _ = listener.accept()
                if mode == "source":
                    paced(connection, open(sys.argv[3], "rb").read(), int(sys.argv[4]))
                    connection.close()
                    continue
                digest, total = hashlib.sha256(), 0
                while True:
                    data = connection.recv(65536)
                    if not data:
                        break
                    digest.update(data)
                    total += len(data)
                connection.sendall(f"{total} {digest.hexdigest()}\n".encode())
                connection.close()
        connection = socket.create_connection((sys.argv[2], int(sys.argv[3])))
        if mode == "fetch":
            size, total, told = int(sys.argv[5]), 0, False
            with open(sys.argv[4], "wb") as out:
                while True:
                    data = connection.recv(65536)
                    if not data:
                        break
                    out.write(data)
                    total += len(data)
                    if not told and total >= size // 8:
                        print("an eighth received", flush=True)
                        told = True
            print(f"received {total}", flush=True)
        else:
            paced(connection, open(sys.argv[4], "rb").read(), int(sys.argv[5]), "an eighth sent")
            connection.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
            print(reply.decode().strip(), flush=True)
        """;

    [Fact]
    public async Task DownloadAndUpload_ThroughATunnelService_ContinueAcrossAMigration()
    {
        await using var run = await TunnelRun.StartAsync(migrationCap: true);
        var (download, upload) = run.StartTransfers();
        await run.WaitForProgressAsync(upload);

        var result = await MigrateAsync(run.Qmp("a"), run.Incoming);
        Assert.True((string?)result["status"] == "completed", $"{result.ToJsonString()}\n{run.Logs()}");
        var flows = result["flows"]!.AsObject();
        Assert.True((long)flows["reset"]! == 0, $"{result.ToJsonString()}\n{run.Logs()}");
        Assert.True((long)flows["tunnel"]! == 2, $"{result.ToJsonString()}\n{run.Logs()}");
        Assert.True((long)flows["tcp"]! >= 2, result.ToJsonString());

        await run.AssertTransfersCompleteAsync(download, upload);
        Assert.Contains(run.A.Lines, l => l.Text.Contains("2 sockets of 1 clients handed over", StringComparison.Ordinal));
        Assert.Contains(run.Client.Lines, l => l.Text.Contains("sockets continue on the target", StringComparison.Ordinal));

        Assert.Equal(string.Empty, await run.ResetsAsync());
    }

    [Fact]
    public async Task DownloadAndUpload_ThroughATunnelService_ContinueAcrossAChainedMigration()
    {
        // 12 MiB at 500 kB/s: about 25 s for both moves, C starting in between.
        await using var run = await TunnelRun.StartAsync(migrationCap: true, rate: 500_000);
        var (download, upload) = run.StartTransfers();
        await run.WaitForProgressAsync(upload);

        var first = await MigrateAsync(run.Qmp("a"), run.Incoming);
        Assert.True((string?)first["status"] == "completed" && (long)first["flows"]!["tunnel"]! == 2, $"{first.ToJsonString()}\n{run.Logs()}");
        await run.B.WaitForLineAsync(l => l.Contains($"TAP {Tap} attached", StringComparison.Ordinal), s_wait);
        await run.Client.WaitForLineAsync(l => l.Contains("2 sockets continue on the target", StringComparison.Ordinal), s_wait);
        var (c, incomingC, spiceC) = await run.StartTargetAsync("c");
        await run.ConnectClientAsync("b", spiceC);
        Assert.False(download.HasExited || upload.HasExited, $"a transfer ended before the second migration\n{download.FormattedOutput}\n{upload.FormattedOutput}");

        var second = await MigrateAsync(run.Qmp("b"), incomingC);
        Assert.True((string?)second["status"] == "completed", $"{second.ToJsonString()}\n{run.Logs()}\nC:\n{c.FormattedOutput}");
        var flows = second["flows"]!.AsObject();
        Assert.True((long)flows["tunnel"]! == 2 && (long)flows["reset"]! == 0, $"{second.ToJsonString()}\n{run.Logs()}\nC:\n{c.FormattedOutput}");

        await run.AssertTransfersCompleteAsync(download, upload);
        Assert.Equal(2, run.Client.Lines.Count(l => l.Text.Contains("2 sockets continue on the target", StringComparison.Ordinal)));
        Assert.Equal(string.Empty, await run.ResetsAsync());
    }

    [Fact]
    public async Task ATargetThatIsGone_LeavesTheTunnelSocketsRunningOnTheSource()
    {
        await using var run = await TunnelRun.StartAsync(migrationCap: true);
        var (download, upload) = run.StartTransfers();
        await run.WaitForProgressAsync(upload);

        // The client linked to B, then B dies: the source flushes the tunnel, cannot reach B and thaws.
        run.B.Signal(9);
        await run.B.WaitForExitAsync(s_wait);
        var result = await MigrateAsync(run.Qmp("a"), run.Incoming);
        Assert.True((string?)result["status"] == "failed", $"{result.ToJsonString()}\n{run.Logs()}");

        await run.AssertTransfersCompleteAsync(download, upload);
        Assert.Contains(run.A.Lines, l => l.Text.Contains("flushed, 2 sockets paused", StringComparison.Ordinal));
        Assert.Contains(run.A.Lines, l => l.Text.Contains("resumed on the source", StringComparison.Ordinal));
        Assert.Contains(run.Client.Lines, l => l.Text.Contains("cancelled; sockets resume on the source", StringComparison.Ordinal));
        Assert.Equal(string.Empty, await run.ResetsAsync());
    }

    [Fact]
    public async Task AClientWithoutTheMigrationCap_HasItsTunnelConnectionsReset_Cleanly()
    {
        await using var run = await TunnelRun.StartAsync(migrationCap: false);
        var (download, upload) = run.StartTransfers();
        await run.WaitForProgressAsync(upload);

        var result = await MigrateAsync(run.Qmp("a"), run.Incoming);
        Assert.True((string?)result["status"] == "completed", $"{result.ToJsonString()}\n{run.Logs()}");
        var flows = result["flows"]!.AsObject();
        Assert.True((long?)flows["reset-tunnel"] == 2, $"{result.ToJsonString()}\nsender: {upload.FormattedOutput}\nfetch: {download.FormattedOutput}\n{run.Logs()}");

        // Both guest ends see the reset (their kernel's ECONNRESET), not a hang; the client lives on and maps its services on B.
        Assert.NotEqual(0, await download.WaitForExitAsync(s_wait));
        Assert.NotEqual(0, await upload.WaitForExitAsync(s_wait));
        Assert.True(download.StderrLines.Any(l => l.Contains("ConnectionResetError", StringComparison.Ordinal)), $"fetch: {download.FormattedOutput}\n{run.Logs()}");
        Assert.True(upload.StderrLines.Any(l => l.Contains("ConnectionResetError", StringComparison.Ordinal)), $"sender: {upload.FormattedOutput}\n{run.Logs()}");
        await run.Client.WaitForLineAsync(l => l.Contains($"linked to 127.0.0.1:{run.SpiceB}", StringComparison.Ordinal), s_wait);
    }

    /// <summary>
    /// The guest's reader stops (as a VM paused by its own migration stops draining its sockets)
    /// until its socket, the gateway's ring and the socket pair are full and the relay on A waits
    /// for room in the pair, and stays stopped for longer than A's flush timeout (shortened to
    /// 300 ms) and through the migration: the relay still pauses for the flush, the socket moves,
    /// and once the reader goes on the download ends with every byte.
    /// </summary>
    [Fact]
    public async Task APausedGuest_LeavesARelayBlockedPastTheFlushTimeout_AndTheSocketStillMoves()
    {
        const int flushMs = 300;
        HostRequirements.RequireCommand("ss");
        await using var run = await TunnelRun.StartAsync(migrationCap: true, flushTimeoutMs: flushMs);
        var (download, upload) = run.StartTransfers();
        await run.WaitForProgressAsync(upload);

        download.Signal(19);
        await run.WaitUntilDownloadStalledAsync();
        await Task.Delay(2 * flushMs, TestContext.Current.CancellationToken);
        var result = await MigrateAsync(run.Qmp("a"), run.Incoming);
        download.Signal(18);
        Assert.True((string?)result["status"] == "completed", $"{result.ToJsonString()}\n{run.Logs()}");
        var flows = result["flows"]!.AsObject();
        Assert.True((long)flows["reset"]! == 0 && (long)flows["tunnel"]! == 2, $"{result.ToJsonString()}\n{run.Logs()}");

        await run.AssertTransfersCompleteAsync(download, upload);
        Assert.Equal(string.Empty, await run.ResetsAsync());
    }

    private static Task<JsonObject> MigrateAsync(string qmp, int port) => QmpMigration.MigrateAsync(qmp, port, s_wait);

    /// <summary>
    /// The namespace with its TAP, the source and sink services on its loopback, appliance A (the
    /// source) and B (the target), and the tunnel client publishing source (port 80) and sink (81).
    /// </summary>
    private sealed class TunnelRun : IAsyncDisposable
    {
        private readonly List<ManagedProcess> _processes = [];

        private TunnelRun(NetNamespace ns, string dir)
        {
            Ns = ns;
            Dir = dir;
        }

        public NetNamespace Ns { get; }

        public string Dir { get; }

        public string Sha256 { get; private set; } = string.Empty;

        public int Incoming { get; private set; }

        public int SpiceB { get; private set; }

        public ManagedProcess Client { get; private set; } = null!;

        public ManagedProcess A { get; private set; } = null!;

        public ManagedProcess B { get; private set; } = null!;

        private ManagedProcess Capture { get; set; } = null!;

        private ManagedProcess Download { get; set; } = null!;

        /// <summary>Bytes a second the download's service and the upload's sender keep to.</summary>
        public int Rate { get; private init; }

        /// <summary>A's tunnel flush timeout in milliseconds (0: its default).</summary>
        public int FlushTimeoutMs { get; private init; }

        public static async Task<TunnelRun> StartAsync(bool migrationCap, int rate = 1_000_000, int flushTimeoutMs = 0)
        {
            HostRequirements.RequireRoot();
            HostRequirements.RequireCommand("python3");
            HostRequirements.RequireCommand("tcpdump");
            HostRequirements.RequireCommand("nft");
            var dir = Directory.CreateTempSubdirectory("nwtm-").FullName;
            var run = new TunnelRun(await NetNamespace.CreateAsync(), dir) { Rate = rate, FlushTimeoutMs = flushTimeoutMs };
            try
            {
                await run.SetUpAsync(migrationCap);
            }
            catch
            {
                await run.DisposeAsync();
                throw;
            }

            return run;
        }

        public string Qmp(string name) => Path.Combine(Dir, name + ".qmp");

        public (ManagedProcess Download, ManagedProcess Upload) StartTransfers()
        {
            // 12 MiB each way at 1 MB/s (the services and the sender pace themselves): about 12 s,
            // so the migration lands in the middle.
            Download = Start(Ns.Start("python3", Path.Combine(Dir, "helper.py"), "fetch", "10.0.2.31", "80", Path.Combine(Dir, "downloaded"), Size.ToString(CultureInfo.InvariantCulture)));
            var upload = Start(Ns.Start("python3", Path.Combine(Dir, "helper.py"), "send", "10.0.2.31", "81", Path.Combine(Dir, "data"), Rate.ToString(CultureInfo.InvariantCulture)));
            return (Download, upload);
        }

        /// <summary>Waits until the download and the upload have each moved an eighth of their bytes (and not all of them).</summary>
        public async Task WaitForProgressAsync(ManagedProcess upload)
        {
            await Download.WaitForLineAsync(l => l.Contains("an eighth received", StringComparison.Ordinal), s_wait);
            await upload.WaitForLineAsync(l => l.Contains("an eighth sent", StringComparison.Ordinal), s_wait);
            Assert.True(!Download.HasExited && !upload.HasExited, $"a transfer ended before the migration\n{Download.FormattedOutput}\n{upload.FormattedOutput}\n{Logs()}");
        }

        /// <summary>
        /// Waits until the download's guest socket holds bytes and takes no more: its receive queue
        /// the same, and not empty, over five looks 200 ms apart (the chain behind it is full then).
        /// </summary>
        public async Task WaitUntilDownloadStalledAsync()
        {
            var last = -1L;
            var same = 0;
            for (var i = 0; same < 5; i++)
            {
                Assert.True(i < 600, $"the download's socket did not fill\n{Logs()}");
                await Task.Delay(200, TestContext.Current.CancellationToken);
                var ss = (await Ns.ExecAsync(["ss", "-tnH", "state", "established", "( dport = :80 )"])).EnsureSuccess();
                var fields = ss.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var queued = fields.Length > 0 ? long.Parse(fields[0], CultureInfo.InvariantCulture) : 0;
                same = queued > 0 && queued == last ? same + 1 : 0;
                last = queued;
            }
        }

        /// <summary>Both transfers exit 0 with every byte: the downloaded file's and the sink's length and sha256 are the data's.</summary>
        public async Task AssertTransfersCompleteAsync(ManagedProcess download, ManagedProcess upload)
        {
            Assert.True(await download.WaitForExitAsync(s_wait) == 0, $"fetch: {download.FormattedOutput}\n{Logs()}");
            var downloaded = await File.ReadAllBytesAsync(Path.Combine(Dir, "downloaded"), TestContext.Current.CancellationToken);
            Assert.Equal(Sha256, Convert.ToHexStringLower(SHA256.HashData(downloaded)));
            Assert.True(await upload.WaitForExitAsync(s_wait) == 0, $"sender: {upload.FormattedOutput}\n{Logs()}");
            Assert.Equal($"{Size} {Sha256}", upload.StdoutLines[^1]);
        }

        /// <summary>The RSTs tcpdump saw on the guest's TAP and on the services' loopback, one per line.</summary>
        public async Task<string> ResetsAsync()
        {
            Capture.Terminate();
            await Capture.WaitForExitAsync(s_wait);
            var resets = await ProcessRunner.RunAsync("tcpdump", ["-r", Path.Combine(Dir, "tunnel.pcap"), "-n", "tcp[tcpflags] & tcp-rst != 0"], s_wait);
            return resets.Stdout.Trim();
        }

        public string Logs() => $"A:\n{A.FormattedOutput}\nB:\n{B.FormattedOutput}\nclient:\n{Client.FormattedOutput}";

        public async ValueTask DisposeAsync()
        {
            for (var i = _processes.Count - 1; i >= 0; i--)
            {
                await _processes[i].DisposeAsync();
            }

            await Ns.DisposeAsync();
            Directory.Delete(Dir, recursive: true);
        }

        private ManagedProcess Start(ManagedProcess process)
        {
            _processes.Add(process);
            return process;
        }

        private async Task SetUpAsync(bool migrationCap)
        {
            foreach (var command in (string[][])[
                ["ip", "link", "set", "lo", "up"],
                ["ip", "tuntap", "add", Tap, "mode", "tap"],
                ["ip", "addr", "add", "10.0.2.100/24", "dev", Tap],
                ["ip", "link", "set", Tap, "up"]])
            {
                (await Ns.ExecAsync(command)).EnsureSuccess();
            }

            var data = new byte[Size];
            new Random(12).NextBytes(data);
            await File.WriteAllBytesAsync(Path.Combine(Dir, "data"), data, TestContext.Current.CancellationToken);
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(data));
            await File.WriteAllTextAsync(Path.Combine(Dir, "helper.py"), Helper, TestContext.Current.CancellationToken);
            var sourcePort = 18080;
            var sinkPort = 18081;

            Capture = Start(Ns.Start("tcpdump", "-i", "any", "-n", "-s", "96", "-U", "-w", Path.Combine(Dir, "tunnel.pcap"), $"tcp port 80 or tcp port 81 or tcp port {sourcePort} or tcp port {sinkPort}"));
            await Capture.WaitForLineAsync(l => l.Contains("listening on", StringComparison.Ordinal), s_wait);
            var source = Start(Ns.Start("python3", Path.Combine(Dir, "helper.py"), "source", sourcePort.ToString(CultureInfo.InvariantCulture), Path.Combine(Dir, "data"), Rate.ToString(CultureInfo.InvariantCulture)));
            await source.WaitForLineAsync(l => l.Contains("source ready", StringComparison.Ordinal), s_wait);
            var sink = Start(Ns.Start("python3", Path.Combine(Dir, "helper.py"), "sink", sinkPort.ToString(CultureInfo.InvariantCulture)));
            await sink.WaitForLineAsync(l => l.Contains("sink ready", StringComparison.Ordinal), s_wait);

            A = Start(Serve("a", incoming: false));
            await A.WaitForLineAsync(l => l.Contains($"TAP {Tap} attached", StringComparison.Ordinal), s_wait);
            await ApplianceOutput.ControlSocketAsync(A, s_wait);
            var spiceA = await ApplianceOutput.PortAsync(A, ApplianceOutput.SpiceListening(), s_wait);
            (B, Incoming, SpiceB) = await StartTargetAsync("b");

            List<string> client = [
                "dotnet", RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{spiceA}", "--password", Password,
                "--service", $"source=127.0.0.1:{sourcePort},port=80", "--service", $"sink=127.0.0.1:{sinkPort},port=81", "--log-level", "Information"];
            if (!migrationCap)
            {
                client.Add("--no-socket-migration");
            }

            Client = Start(Ns.Start(client));
            await Client.WaitForLineAsync(l => l.StartsWith("service sink 10.0.2.31:81", StringComparison.Ordinal), s_wait);

            await ConnectClientAsync("a", SpiceB);
        }

        /// <summary>Starts a migration target (it waits for the TAP while its source has it): the process, its state port and its SPICE port.</summary>
        public async Task<(ManagedProcess Target, int Incoming, int Spice)> StartTargetAsync(string name)
        {
            var target = Start(Serve(name, incoming: true));
            var incoming = await ApplianceOutput.PortAsync(target, ApplianceOutput.IncomingListening(), s_wait);
            var spice = await ApplianceOutput.PortAsync(target, ApplianceOutput.SpiceListening(), s_wait);
            await ApplianceOutput.ControlSocketAsync(target, s_wait);
            return (target, incoming, spice);
        }

        /// <summary><c>client_migrate_info</c> on <paramref name="source"/>, then waits until the client linked to the target (client state 3).</summary>
        public async Task ConnectClientAsync(string source, int spice)
        {
            var info = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", "unix:" + Qmp(source), "client_migrate_info", "protocol=spice", "hostname=127.0.0.1", $"port={spice}"], s_wait);
            Assert.True(info.ExitCode == 0, info.Stderr);
            for (var i = 0; ; i++)
            {
                var state = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", "unix:" + Qmp(source), "query-migrate-client-state"], s_wait);
                if ((int)JsonNode.Parse(state.Stdout)!["state"]! == 3)
                {
                    break;
                }

                Assert.True(i < 100, $"the client did not link to the target of {source}\n{Logs()}");
                await Task.Delay(200, TestContext.Current.CancellationToken);
            }
        }

        private ManagedProcess Serve(string name, bool incoming)
        {
            List<string> args = [
                "dotnet", RepoPaths.NetwireDll, "serve", "--guest", $"tap:{Tap}", "--tunnel", "--spice-port", "0", "--password", Password,
                "--qmp", $"unix:{Qmp(name)}", "--log-level", "Information"];
            if (incoming)
            {
                args.AddRange(["--incoming", "tcp:127.0.0.1:0"]);
            }

            return FlushTimeoutMs > 0 && !incoming
                ? Ns.Start(args, new Dictionary<string, string?> { ["NETWIRE_TUNNEL_FLUSH_TIMEOUT_MS"] = FlushTimeoutMs.ToString(CultureInfo.InvariantCulture) })
                : Ns.Start(args);
        }
    }
}
