using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// A <c>netwire run</c>-style namespace peer: the namespace's kernel talks through a TAP to the
/// gateway of <c>netwire serve</c> A, and an iperf3 stream to a server on the namespace's
/// loopback survives two migrations of the gateway, A to B and B to C (the TAP re-attached to
/// each target in turn; docs/migration.md, "A namespace peer"). iperf3 completes, every
/// connection moved, and nobody saw a RST while the gateway moved. A second iperf3 stream comes in through a host
/// forward added to A at run time (QMP <c>hostfwd-add</c>): the forward travels with the state,
/// each target publishes it, and its stream moves like the other.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class NamespaceMigrationTests
{
    private const string Tap = "nwm0";
    private const int IperfPort = 5201;
    private const int ForwardedPort = 5202;
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task IperfStream_SurvivesAChainedMigration_OfItsGateway()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("iperf3");
        HostRequirements.RequireCommand("nft");
        HostRequirements.RequireCommand("tcpdump");
        var dir = Directory.CreateTempSubdirectory("nwns-").FullName;
        await using var ns = await NetNamespace.CreateAsync();
        try
        {
            foreach (var command in (string[][])[
                ["ip", "tuntap", "add", Tap, "mode", "tap"],
                ["ip", "addr", "add", "10.0.2.100/24", "dev", Tap],
                ["ip", "link", "set", Tap, "up"],
                ["ip", "route", "add", "default", "via", "10.0.2.2", "dev", Tap]])
            {
                (await ns.ExecAsync(command)).EnsureSuccess();
            }

            var pcap = Path.Combine(dir, "ns.pcap");
            var capture = ns.Start("tcpdump", "-i", "any", "-n", "-s", "96", "-U", "-w", pcap, $"tcp port {IperfPort} or tcp port {ForwardedPort}");
            await capture.WaitForLineAsync(l => l.Contains("listening on", StringComparison.Ordinal), s_wait);
            ns.Start("iperf3", "-s", "-B", "127.0.0.1", "-p", IperfPort.ToString(CultureInfo.InvariantCulture), "-1");
            await ns.WaitForTcpListenerAsync(IperfPort, s_wait);

            // The forwarded stream's server is the "guest" side: the namespace's TAP address.
            ns.Start("iperf3", "-s", "-B", "10.0.2.100", "-p", ForwardedPort.ToString(CultureInfo.InvariantCulture), "-1");
            await ns.WaitForTcpListenerAsync(ForwardedPort, s_wait);

            var a = Serve(ns, dir, "a", incoming: false);
            await a.WaitForLineAsync(l => l.Contains($"TAP {Tap} attached", StringComparison.Ordinal), s_wait);
            await ApplianceOutput.ControlSocketAsync(a, s_wait);

            // Each target starts before its turn (it waits for the TAP while its source has it): B
            // before the stream, C while the stream runs through B. 40 MB at 8 Mbit/s: 40 s.
            var next = await StartTargetAsync(ns, dir, "b");
            var client = ns.Start("iperf3", "-c", "10.0.2.2", "-p", IperfPort.ToString(CultureInfo.InvariantCulture), "-n", "40M", "-b", "8M", "-i", "1", "--forceflush");
            await client.WaitForLineAsync(l => IntervalLine().IsMatch(l), s_wait);

            // A forward added while A runs; its port is not on any appliance's command line.
            var added = await QmpAsync(Path.Combine(dir, "a.qmp"), "hostfwd-add", $"{{\"host-port\":{ForwardedPort},\"guest-port\":{ForwardedPort}}}");
            Assert.True(added["return"]?["id"] is not null, added.ToJsonString());
            var forwarded = ns.Start("iperf3", "-c", "127.0.0.1", "-p", ForwardedPort.ToString(CultureInfo.InvariantCulture), "-n", "20M", "-b", "4M", "-i", "1", "--forceflush");
            await forwarded.WaitForLineAsync(l => IntervalLine().IsMatch(l), s_wait);

            var source = a;
            var sourceName = "a";
            foreach (var name in (string[])["b", "c"])
            {
                var (target, incoming) = next;
                var result = await MigrateAsync(Path.Combine(dir, sourceName + ".qmp"), incoming);
                Assert.True((string?)result["status"] == "completed", $"{sourceName} -> {name}: {result.ToJsonString()}\n{source.FormattedOutput}\n{target.FormattedOutput}");
                var flows = result["flows"]!.AsObject();
                Assert.True((long)flows["tcp"]! >= 4, result.ToJsonString());
                Assert.Equal(0L, (long)flows["reset"]!);
                var phases = result["phases"]!.AsObject();
                Assert.Equal(["start", "freeze", "state", "connect", "transfer", "release", "restore", "unlock", "end"], phases.Select(p => p.Key));
                Assert.All(phases, p => Assert.InRange((double)p.Value!, 0, (double)result["total-time"]! + 1));
                await target.WaitForLineAsync(l => l.Contains($"TAP {Tap} attached", StringComparison.Ordinal), s_wait);

                // The target publishes the forward added on A.
                var listed = await QmpAsync(Path.Combine(dir, name + ".qmp"), "query-hostfwd", "{}");
                Assert.True(
                    listed["return"]!.AsArray().Any(f => (int?)f!["host-port"] == ForwardedPort && (int?)f["guest-port"] == ForwardedPort && (string?)f["protocol"] == "tcp"),
                    $"{name}: {listed.ToJsonString()}\n{target.FormattedOutput}");

                // The target's own steps of the handover (docs/control.md, query-migrate's incoming.phases).
                var adopted = await QmpAsync(Path.Combine(dir, name + ".qmp"), "query-migrate", "{}");
                var steps = adopted["return"]?["incoming"]?["phases"]?.AsObject();
                Assert.True(steps is not null, $"{name}: {adopted.ToJsonString()}");
                Assert.Equal(["read", "check", "commit", "apply", "reply", "unlock", "activate"], steps.Select(p => p.Key));

                // Both streams go on through the target: another interval is reported after the move.
                foreach (var stream in (ManagedProcess[])[client, forwarded])
                {
                    var before = stream.StdoutLines.Count(l => IntervalLine().IsMatch(l));
                    var seen = 0;
                    await stream.WaitForLineAsync(l => IntervalLine().IsMatch(l) && ++seen > before, s_wait);
                }
                source.Terminate();
                source = target;
                sourceName = name;
                if (name == "b")
                {
                    next = await StartTargetAsync(ns, dir, "c");
                }
            }

            // C's stream runs on after B is gone. RSTs up to here are the migrations'; after it, at
            // the very end, iperf3's server may reset a data connection it closes with bytes still
            // on the way (the gateway holds some, and TEST_END overtakes them on the control
            // connection): that is how a split TCP path ends an iperf3 test, migration or not.
            foreach (var stream in (ManagedProcess[])[client, forwarded])
            {
                var before = stream.StdoutLines.Count(l => IntervalLine().IsMatch(l));
                var seen = 0;
                await stream.WaitForLineAsync(l => IntervalLine().IsMatch(l) && ++seen > before, s_wait);
            }

            var movesChecked = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
            Assert.Equal(0, await client.WaitForExitAsync(s_wait));
            var output = string.Join('\n', client.StdoutLines);
            Assert.Matches(@"sec\s+[\d.]+ MBytes.*receiver", output);
            Assert.Equal(0, await forwarded.WaitForExitAsync(s_wait));
            output += "\n" + string.Join('\n', forwarded.StdoutLines);
            Assert.Matches(@"sec\s+[\d.]+ MBytes.*receiver", string.Join('\n', forwarded.StdoutLines));

            capture.Terminate();
            await capture.WaitForExitAsync(s_wait);
            var resets = await ProcessRunner.RunAsync("tcpdump", ["-r", pcap, "-n", "-tt", "tcp[tcpflags] & tcp-rst != 0"], s_wait);
            var duringMoves = resets.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => double.Parse(l.Split(' ')[0], CultureInfo.InvariantCulture) < movesChecked)
                .ToList();
            Assert.True(duringMoves.Count == 0, $"RSTs while the gateway moved: {string.Join('\n', duringMoves)}\nall RSTs: {resets.Stdout}\n{output}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(ManagedProcess Target, int Incoming)> StartTargetAsync(NetNamespace ns, string dir, string name)
    {
        var target = Serve(ns, dir, name, incoming: true);
        var incoming = await ApplianceOutput.PortAsync(target, ApplianceOutput.IncomingListening(), s_wait);
        await ApplianceOutput.ControlSocketAsync(target, s_wait);
        return (target, incoming);
    }

    private static ManagedProcess Serve(NetNamespace ns, string dir, string name, bool incoming)
    {
        List<string> args = [
            "dotnet", RepoPaths.NetwireDll, "serve", "--guest", $"tap:{Tap}", "--spice-port", "0", "--disable-ticketing",
            "--qmp", $"unix:{Path.Combine(dir, name + ".qmp")}", "--allow-host-loopback", "--log-level", "Information"];
        if (incoming)
        {
            args.AddRange(["--incoming", "tcp:127.0.0.1:0"]);
        }

        return ns.Start(args);
    }

    private static Task<JsonObject> QmpAsync(string qmp, string command, string arguments) => QmpMigration.CommandAsync(qmp, command, arguments, s_wait);

    private static Task<JsonObject> MigrateAsync(string qmp, int port) => QmpMigration.MigrateAsync(qmp, port, s_wait);

    [GeneratedRegex(@"^\[\s*\d+\]\s+[\d.]+-[\d.]+\s+sec\s+[\d.]+ [KMG]?Bytes")]
    private static partial Regex IntervalLine();
}
