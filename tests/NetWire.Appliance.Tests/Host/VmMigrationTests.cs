using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// A QEMU guest downloads about 12 MB at 1 MB/s from a host loopback server through the gateway
/// of <c>netwire serve</c> A while the VM migrates to a second QEMU and the appliance to B, as
/// docs/migration.md ("Whole-VM migration") tells a user to do it, with tools/migrate-vm.py: the
/// download completes on the target with the right length and sha256, and tcpdump sees no RST
/// on the server's port.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class VmMigrationTests
{
    private const int PayloadBytes = 12 << 20;
    private const int HeldBackBytes = 2 << 20;
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(180);

    [Fact]
    public async Task GuestDownload_ThroughTheGateway_CompletesOnTheTarget_WithoutReset()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("qemu-system-x86_64");
        HostRequirements.RequireCommand("nft");
        HostRequirements.RequireCommand("tcpdump");
        HostRequirements.RequireCommand("python3");
        HostRequirements.RequireGuestImage();
        var cancellationToken = TestContext.Current.CancellationToken;
        var dir = Directory.CreateTempSubdirectory("nwvm-").FullName;
        try
        {
            var payload = new byte[PayloadBytes];
            new Random(12).NextBytes(payload);
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            var migrated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var progress = new Progress();
            var server = ServeAsync(listener, payload, progress, migrated.Task, cancellationToken);

            var pcap = Path.Combine(dir, "lo.pcap");
            await using var capture = ProcessRunner.Start("tcpdump", ["-i", "lo", "-n", "-s", "96", "-U", "-w", pcap, $"tcp port {port}"]);
            await capture.WaitForLineAsync(l => l.Contains("listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(30));

            var guestA = Path.Combine(dir, "ga.sock");
            var guestB = Path.Combine(dir, "gb.sock");
            await using var a = Serve("na", guestA, dir, incoming: false);
            await using var b = Serve("nb", guestB, dir, incoming: true);
            var incoming = int.Parse(IncomingListening().Match(await b.WaitForLineAsync(l => IncomingListening().IsMatch(l), s_wait)).Groups[1].Value, CultureInfo.InvariantCulture);
            await a.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), s_wait);
            await b.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), s_wait);

            var script = $$"""
                . /lib/nw.sh
                mkfifo /tmp/hold
                mark READY
                nc 10.0.2.2 {{port}} <> /tmp/hold > /tmp/f
                rc=$?
                mark DOWNLOAD rc=$rc len=$(wc -c < /tmp/f) sha=$(sha256sum /tmp/f | cut -d' ' -f1)
                """;
            await using var source = QemuGuest.Start(new QemuGuestOptions
            {
                Netdev = $"stream,id=n0,server=off,addr.type=unix,addr.path={guestA}",
                KernelArgs = "nw.ip=dhcp ipv6.disable=1",
                TestScript = script,
                QmpSocket = Path.Combine(dir, "qa.qmp"),
            });
            await source.WaitForMarkerAsync("READY", s_wait);

            // The migration starts mid-download, and the last 2 MiB wait until it has finished.
            await progress.WaitForAsync(3 << 20, s_wait);
            var qemuPort = FreePort();
            await using var target = QemuGuest.Start(new QemuGuestOptions
            {
                Netdev = $"stream,id=n0,server=off,addr.type=unix,addr.path={guestB}",
                KernelArgs = "nw.ip=dhcp ipv6.disable=1",
                Initrd = source.Initrd,
                QmpSocket = Path.Combine(dir, "qb.qmp"),
                Incoming = $"tcp:127.0.0.1:{qemuPort}",
            });
            var run = await ProcessRunner.RunAsync("python3", [
                Path.Combine(RepoPaths.Root, "tools", "migrate-vm.py"), "--json",
                "--qemu-source", Path.Combine(dir, "qa.qmp"), "--qemu-target", Path.Combine(dir, "qb.qmp"), "--qemu-uri", $"tcp:127.0.0.1:{qemuPort}",
                "--netwire-source", Path.Combine(dir, "na.qmp"), "--netwire-target", Path.Combine(dir, "nb.qmp"), "--netwire-uri", $"tcp:127.0.0.1:{incoming}",
            ], s_wait);
            Assert.True(run.ExitCode == 0, $"migrate-vm: {run.Stdout} {run.Stderr}\nA: {a.FormattedOutput}\nB: {b.FormattedOutput}");
            TestContext.Current.TestOutputHelper?.WriteLine($"migrate-vm: {run.Stdout}");
            using (var result = JsonDocument.Parse(run.Stdout))
            {
                var netwire = result.RootElement.GetProperty("netwire");
                Assert.Equal("completed", netwire.GetProperty("status").GetString());
                Assert.True(netwire.GetProperty("flows").GetProperty("tcp").GetInt64() >= 1, $"{run.Stdout}\nA: {a.FormattedOutput}");
                Assert.Equal(0, netwire.GetProperty("flows").GetProperty("reset").GetInt64());
            }

            migrated.SetResult();
            var done = await target.WaitForMarkerAsync("DOWNLOAD", s_wait);
            Assert.Equal($"rc=0 len={PayloadBytes} sha={Convert.ToHexStringLower(SHA256.HashData(payload))}", done);
            await server;

            capture.Terminate();
            await capture.WaitForExitAsync(TimeSpan.FromSeconds(30));
            var resets = await ProcessRunner.RunAsync("tcpdump", ["-r", pcap, "-n", "tcp[tcpflags] & tcp-rst != 0"], TimeSpan.FromSeconds(60));
            Assert.True(resets.Stdout.Trim().Length == 0, $"RSTs on the server's port: {resets.Stdout}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static ManagedProcess Serve(string qmp, string guest, string dir, bool incoming)
    {
        List<string> args = [
            RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{guest}", "--spice-port", "0", "--disable-ticketing",
            "--qmp", $"unix:{Path.Combine(dir, qmp + ".qmp")}", "--allow-host-loopback", "--log-level", "Information"];
        if (incoming)
        {
            args.AddRange(["--incoming", "tcp:127.0.0.1:0"]);
        }

        return ProcessRunner.Start("dotnet", args);
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

    [GeneratedRegex(@"Waiting for incoming migration on 127\.0\.0\.1:(\d+)")]
    private static partial Regex IncomingListening();
}
