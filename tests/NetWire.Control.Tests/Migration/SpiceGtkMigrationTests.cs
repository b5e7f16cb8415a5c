using System.Globalization;
using System.Text.Json.Nodes;
using NetWire.Spice.Channels.Main;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// spice-gtk 0.42 connected to appliance A follows a semi-seamless migration to appliance B
/// (started as an incoming target): it ends on B with its main channel initialised by B, A's
/// connections are closed, and the main-channel messages on the wire, captured with tshark on
/// loopback, come in the order of the reference trace between two QEMU SPICE servers; <c>netwire
/// inspect --spice</c> on that capture names the migration, its steps and its switch time as the
/// test measured them with tshark.
/// </summary>
[Trait("Category", "Host")]
public sealed class SpiceGtkMigrationTests
{
    /// <summary>
    /// The semi-seamless order of the recorded QEMU migration (protocol.md §5.5), main channel
    /// only (NetWire serves no display, cursor or inputs channel): S = source, T = target.
    /// </summary>
    private static readonly string[] s_referenceOrder =
    [
        "S>C MIGRATE_BEGIN",
        "C>T link",
        "T>C link",
        "C>S MIGRATE_CONNECTED",
        "S>C MIGRATE_END",
        "C>T MIGRATE_END",
        "T>C INIT",
    ];

    [Fact]
    public async Task SemiSeamless_ClientEndsOnTarget_MessagesInReferenceOrder()
    {
        GtkMigrationClient.Require();
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("tshark");
        var dir = Directory.CreateTempSubdirectory("nwmig-cap-").FullName;
        try
        {
            File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
            var pcap = Path.Combine(dir, "migration.pcapng");
            await using var a = Appliance.Start();
            await using var b = Appliance.Start(incoming: true);
            var ports = (A: a.SpicePort.ToString(CultureInfo.InvariantCulture), B: b.SpicePort.ToString(CultureInfo.InvariantCulture));
            await using (var capture = ProcessRunner.Start("tshark", ["-i", "lo", "-f", $"tcp port {ports.A} or tcp port {ports.B}", "-w", pcap]))
            {
                await capture.WaitForLineAsync(l => l.Contains("Capturing on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                await using var client = await GtkMigrationClient.ConnectAsync(a.SpicePort, Appliance.Password);
                var original = Assert.Single(a.Spice.Sessions.Snapshot());
                await using var qmp = await a.QmpAsync();
                Assert.Equal(3, await qmp.ClientStateAsync());

                await qmp.ClientMigrateInfoAsync(b.SpicePort);
                var done = await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);
                Assert.Equal(1, (int)done["data"]!["connected"]!);
                Assert.Equal(3, await qmp.ClientStateAsync());
                var parked = Assert.Single(b.Spice.Sessions.Snapshot());
                Assert.True(parked.IsMigrationTarget);
                Assert.Equal(original.SessionId, parked.SessionId);
                Assert.False(parked.Started.IsCompleted);

                await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
                var end = await qmp.WaitMigrationEndAsync();
                Assert.Equal("completed", (string?)end["status"]);
                Assert.True((long)end["state"]!["transferred"]! > 0);
                Assert.Equal((long)end["state"]!["total"]!, (long)end["state"]!["transferred"]!);

                var result = await client.ResultAsync();
                Assert.True(result.ExitCode == 0, client.Process.FormattedOutput);
                Assert.Equal(b.SpicePort, result.Port);
                Assert.Contains("migrating", result.States, StringComparison.Ordinal);
                Assert.True(await parked.Started, "B never started the migrated session");
                await Qmp.UntilAsync(() => a.Spice.Sessions.Count == 0, "A's session to close");
                await qmp.WaitEventAsync("SPICE_MIGRATE_COMPLETED", Qmp.Token);

                await Task.Delay(500, Qmp.Token);
                capture.Signal(2);
                await capture.WaitForExitAsync(TimeSpan.FromSeconds(30));
            }

            var frames = await MainChannelOrderAsync(pcap, ports.A, ports.B);
            var order = frames.Select(f => f.Event).ToArray();
            var seen = order.Where(e => s_referenceOrder.Contains(e)).Distinct().ToArray();
            Assert.True(s_referenceOrder.SequenceEqual(seen), "order on the wire:\n" + string.Join('\n', order));

            // Between its link result and INIT, the target sends nothing on the main channel.
            var targetLink = Array.LastIndexOf(order, "T>C link");
            var targetInit = Array.IndexOf(order, "T>C INIT");
            Assert.DoesNotContain(order[(targetLink + 1)..targetInit], e => e.StartsWith("T>C", StringComparison.Ordinal));

            // netwire inspect --spice reads the same capture: one semi-seamless migration to B, its
            // steps in the protocol's order, and the switch (the source's MIGRATE_END to the
            // target's INIT) as long as tshark's frame times make it.
            var inspected = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "inspect", pcap, "--spice", "--json"], TimeSpan.FromSeconds(60));
            Assert.True(inspected.ExitCode == 0, inspected.Stderr);
            var migration = Assert.Single(JsonNode.Parse(inspected.Stdout)!["migrations"]!.AsArray())!;
            Assert.Equal("semi-seamless", (string?)migration["kind"]);
            Assert.Equal(b.SpicePort, (int?)migration["destination"]?["port"]);
            string[] steps = ["MIGRATE_BEGIN", "target link main:0", "MIGRATE_CONNECTED", "MIGRATE_END", "client MIGRATE_END", "target INIT"];
            var events = migration["events"]!.AsArray().Select(e => (string)e!["event"]!).ToArray();
            Assert.True(steps.SequenceEqual(events.Where(steps.Contains)), string.Join(", ", events));
            var switchMs = (frames.First(f => f.Event == "T>C INIT").Time - frames.First(f => f.Event == "S>C MIGRATE_END").Time) * 1000;
            Assert.Equal(switchMs, (double)migration["switch_ms"]!, 0.002);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>
    /// The SPICE messages of the capture in wire order as "S>C NAME" (source), "T>C NAME"
    /// (target), "C>S", "C>T", with their frames' times; link-stage frames are "link".
    /// </summary>
    private static async Task<(string Event, double Time)[]> MainChannelOrderAsync(string pcap, string source, string target)
    {
        var result = await ProcessRunner.RunAsync("tshark", ["-r", pcap, "-d", $"tcp.port=={source},spice", "-d", $"tcp.port=={target},spice",
            "-Y", "spice", "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "_ws.col.Info"], TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, result.Stderr);
        var order = new List<(string, double)>();
        foreach (var line in result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split('|');
            var time = double.Parse(fields[0], CultureInfo.InvariantCulture);
            fields = fields[1..];
            var direction = (fields[0], fields[1]) switch
            {
                var (s, _) when s == source => "S>C",
                var (s, _) when s == target => "T>C",
                var (_, d) when d == source => "C>S",
                _ => "C>T",
            };
            foreach (var item in fields[2].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                order.Add((direction + " " + Name(item), time));
            }
        }

        return [.. order];
    }

    private static string Name(string info)
    {
        // tshark 4.0 flags every MIGRATE_BEGIN "[Malformed Packet]", QEMU's own too (protocol.md §5.5);
        // the message name is still the word before it.
        info = info.Replace("[Malformed Packet]", string.Empty, StringComparison.Ordinal).Trim();
        if (info.Contains("link", StringComparison.OrdinalIgnoreCase) || info.Contains("ticket", StringComparison.OrdinalIgnoreCase) || info.Contains("authentication", StringComparison.OrdinalIgnoreCase))
        {
            return "link";
        }

        var words = info.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return words.Length > 0 ? words[^1] : info;
    }
}
