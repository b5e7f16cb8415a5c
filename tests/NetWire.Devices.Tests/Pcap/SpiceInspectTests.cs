using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>
/// <c>netwire inspect --spice</c> on the spice-gtk migration captures of captures/ (made by
/// tools/captures/make-spice-captures.sh): the expected summary; every message as tshark frames
/// it, named; MIGRATE_BEGIN and SWITCH_HOST decoded where tshark 4.0 calls them malformed, with
/// the target the client logged; the migration steps in the order of protocol.md §5; the switch
/// time as tshark's frame times give it and the migration's length as the client measured it.
/// </summary>
public sealed partial class SpiceInspectTests
{
    public static TheoryData<string> Captures()
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "captures"), "spice-*.pcapng").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileNameWithoutExtension(path));
        }

        return data;
    }

    [Fact]
    public void TheCapturesAreThere()
    {
        Assert.Equal(["spice-migration-netwire", "spice-migration-qemu", "spice-switch-host-qemu"], Captures().Select(row => row.Data).ToArray());
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public async Task Capture_MatchesItsExpectedSpiceSummary(string name)
    {
        var actual = await InspectAsync(name);
        var expected = JsonNode.Parse(await File.ReadAllTextAsync(CapturePath(name, ".spice.json"), TestContext.Current.CancellationToken))!;
        Assert.True(JsonNode.DeepEquals(expected, actual), $"expected\n{expected}\nactual\n{actual}");
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public async Task EveryMessage_FramedAsTsharkFramesIt_AndNamed(string name)
    {
        HostRequirements.RequireCommand("tshark");
        var summary = await InspectAsync(name);
        var conversations = summary["conversations"]!.AsArray();
        Assert.NotEmpty(conversations);
        var tshark = await TsharkMessagesAsync(name, conversations);
        foreach (var conversation in conversations)
        {
            Assert.Null(conversation!["problem"]);
            Assert.Contains((int?)conversation["link_result"], new int?[] { 0, 7 }); // OK, or PERMISSION_DENIED on a refused target
            var client = Port((string)conversation["client"]!);
            if ((int?)conversation["link_result"] != 0)
            {
                // A refused link carries no messages.
                Assert.DoesNotContain(conversation["messages"]!.AsArray(), m => (int)m!["type"]! != 0);
                continue;
            }

            if (TunnelClientSession(conversations, conversation!))
            {
                // netwire tunnel-client sends the auth mechanism word and the ticket in one segment;
                // tshark 4.0 then calls every later frame of the connection "Client ticket", both
                // ways, and frames nothing: inspect alone reads these, and must read messages.
                Assert.Contains(conversation["messages"]!.AsArray(), m => (int)m!["type"]! != 0);
                continue;
            }

            foreach (var direction in new[] { "C>S", "S>C" })
            {
                var ours = conversation["messages"]!.AsArray()
                    .Where(m => (string)m!["direction"]! == direction && (int)m["type"]! != 0)
                    .Select(m => (int)m!["type"]!).ToArray();
                var theirs = tshark.Where(t => t.ClientPort == client && t.FromClient == (direction == "C>S")).SelectMany(t => t.Types).ToArray();
                Assert.True(theirs.SequenceEqual(ours), $"{name} #{conversation["index"]} {direction}: tshark [{string.Join(' ', theirs)}], inspect [{string.Join(' ', ours)}]");
            }

            foreach (var message in conversation["messages"]!.AsArray())
            {
                Assert.Matches(MessageName(), (string)message!["name"]!);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public async Task WhereTsharkSaysMalformed_TheDestinationIsTheOneTheClientFollowed(string name)
    {
        HostRequirements.RequireCommand("tshark");
        var summary = await InspectAsync(name);
        var conversations = summary["conversations"]!.AsArray();
        var malformed = (await TsharkMessagesAsync(name, conversations)).Where(t => t.Malformed).ToArray();
        Assert.NotEmpty(malformed);
        var log = await File.ReadAllTextAsync(CapturePath(name, ".client.txt"), TestContext.Current.CancellationToken);
        var started = ClientTarget().Matches(log).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToArray();
        var ended = int.Parse(ClientResult().Match(log).Groups[1].Value, CultureInfo.InvariantCulture);
        foreach (var frame in malformed)
        {
            // The messages inspect read from that frame's connection and direction, at its time.
            var conversation = conversations.Single(c => Port((string)c!["client"]!) == frame.ClientPort)!;
            var decoded = conversation["messages"]!.AsArray()
                .Where(m => Math.Abs((double)m!["time_s"]! - (frame.Time - ((long)summary["first_ns"]! / 1e9))) < 2e-6 && (int)m["type"]! != 0).ToArray();
            Assert.NotEmpty(decoded);
            foreach (var message in decoded)
            {
                var type = (string)message!["name"]!;
                Assert.Contains(type, new[] { "MIGRATE_BEGIN", "MIGRATE_BEGIN_SEAMLESS", "MIGRATE_SWITCH_HOST" });
                var destination = message["destination"]!;
                Assert.Equal("127.0.0.1", (string)destination["host"]!);
                Assert.Null(destination["secure_port"]);
                Assert.Contains((int)destination["port"]!, type == "MIGRATE_SWITCH_HOST" ? [ended] : started);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public async Task Migration_InProtocolOrder_SwitchTimeAsTsharkTimesIt_LengthAsTheClientMeasured(string name)
    {
        HostRequirements.RequireCommand("tshark");
        var summary = await InspectAsync(name);
        var conversations = summary["conversations"]!.AsArray();
        var migrations = summary["migrations"]!.AsArray();
        var log = await File.ReadAllTextAsync(CapturePath(name, ".client.txt"), TestContext.Current.CancellationToken);
        var switchHost = name.Contains("switch-host", StringComparison.Ordinal);

        // spice-gtk's session: the one migrating to the port the client ended on (netwire's
        // capture has a tunnel-client's session beside it, the one with a tunnel channel).
        var ended = int.Parse(ClientResult().Match(log).Groups[1].Value, CultureInfo.InvariantCulture);
        var migration = migrations.Single(m => (int?)m!["destination"]?["port"] == ended && !SessionChannels(conversations, m!).Contains("tunnel:0"))!;
        string[] order = switchHost
            ? ["MIGRATE_BEGIN", "target link main:0", "MIGRATE_CONNECT_ERROR", "MIGRATE_SWITCH_HOST", "new session link", "new session INIT"]
            : ["MIGRATE_BEGIN", "target link main:0", "MIGRATE_CONNECTED", "MIGRATE_END", "client MIGRATE_END", "target INIT"];
        var events = migration["events"]!.AsArray().Select(e => (string)e!["event"]!).ToArray();
        Assert.True(order.SequenceEqual(events.Where(order.Contains)), $"{name}: {string.Join(", ", events)}");
        Assert.Equal(switchHost ? "switch-host" : "semi-seamless", (string)migration["kind"]!);
        if (switchHost)
        {
            Assert.Equal("PERMISSION_DENIED", (string)migration["events"]!.AsArray().First(e => (string)e!["event"]! == "target link main:0")!["detail"]!);
        }

        // The switch time, from the frames tshark shows: the source's MIGRATE_END (112) or
        // SWITCH_HOST (111) to the first INIT (103) on the target's main channel.
        var tshark = await TsharkMessagesAsync(name, conversations);
        var source = Port((string)conversations[(int)migration["source"]! - 1]!["client"]!);
        var target = Port((string)conversations[(int)migration["target"]! - 1]!["client"]!);
        var end = tshark.First(t => t.ClientPort == source && !t.FromClient && t.Types.Contains(switchHost ? 111 : 112)).Time;
        var init = tshark.First(t => t.ClientPort == target && !t.FromClient && t.Types.Contains(103)).Time;
        Assert.Equal((init - end) * 1000, (double)migration["switch_ms"]!, 0.002);

        // The migration's length as spice-gtk lived it: from its migration-started event
        // (MIGRATE_BEGIN) to the move's end (state none on the target after MIGRATE_END, or main
        // opened on the target after SWITCH_HOST), each a little after its message arrived.
        var started = Seconds(ClientStarted().Match(log));
        var moved = Seconds(switchHost ? ClientOpened().Matches(log)[^1] : ClientNone().Matches(log)[^1]);
        var measured = (moved - started) * 1000;
        Assert.InRange((double)migration["duration_ms"]!, measured - 150, measured + 150);
        Assert.InRange((double)migration["switch_ms"]!, 0, (double)migration["duration_ms"]!);
    }

    [Fact]
    public async Task NetwireCapture_HasTheTunnelClientsChannel_AndBothClientsMigrate()
    {
        var summary = await InspectAsync("spice-migration-netwire");
        var tunnels = summary["conversations"]!.AsArray().Where(c => (string)c!["channel"]! == "tunnel:0").ToArray();
        Assert.Equal(2, tunnels.Length);
        foreach (var tunnel in tunnels)
        {
            var names = tunnel!["messages"]!.AsArray().Select(m => (string)m!["name"]!).ToArray();
            Assert.Contains("SERVICE_ADD", names);
            Assert.Contains("SERVICE_IP_MAP", names);
            Assert.Contains("INIT", names);
        }

        var migrations = summary["migrations"]!.AsArray();
        Assert.Equal(2, migrations.Count);
        Assert.All(migrations, m => Assert.Equal("semi-seamless", (string)m!["kind"]!));
    }

    [Fact]
    public async Task Text_NamesTheMigrationAndTheSwitch()
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "inspect", CapturePath("spice-migration-qemu", ".pcapng"), "--spice"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("(semi-seamless)", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"S>C MIGRATE_BEGIN host 127\.0\.0\.1 port \d+ sport none", result.Stdout);
        Assert.Matches(@"client switch: \d+\.\d{3} ms", result.Stdout);
    }

    [Fact]
    public async Task SpicePort_OutOfRange_IsAUsageError()
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "inspect", CapturePath("spice-migration-qemu", ".pcapng"), "--spice", "--spice-port", "70000"], TimeSpan.FromSeconds(60));
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--spice-port", result.Stderr, StringComparison.Ordinal);
    }

    private static string CapturePath(string name, string extension) => Path.Combine(RepoPaths.Root, "captures", name + extension);

    private static async Task<JsonNode> InspectAsync(string name)
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "inspect", CapturePath(name, ".pcapng"), "--spice", "--json"], TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.Stderr);
        return JsonNode.Parse(result.Stdout)!;
    }

    private static int Port(string endpoint) => int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);

    private static double Seconds(Match match) => double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>The channels the migrating client had on its source session.</summary>
    private static string[] SessionChannels(JsonArray conversations, JsonNode migration)
    {
        var session = (uint)migration["session_id"]!;
        var source = (string)conversations[(int)migration["source"]! - 1]!["server"]!;
        return conversations.Where(c => (string)c!["server"]! == source && (uint)c["connection_id"]! == session).Select(c => (string)c!["channel"]!).ToArray();
    }

    /// <summary>A conversation of a session that has a tunnel channel (netwire tunnel-client's; spice-gtk has none).</summary>
    private static bool TunnelClientSession(JsonArray conversations, JsonNode conversation)
    {
        var session = (uint?)conversation["session_id"] ?? (uint)conversation["connection_id"]!;
        return conversations.Any(c => (string)c!["channel"]! == "tunnel:0" && (uint)c["connection_id"]! == session);
    }

    /// <summary>One frame's SPICE data messages as tshark dissects them, its SPICE ports given by the conversations.</summary>
    private sealed record TsharkFrame(double Time, int ClientPort, bool FromClient, int[] Types, bool Malformed);

    private static async Task<TsharkFrame[]> TsharkMessagesAsync(string name, JsonArray conversations)
    {
        var servers = conversations.Select(c => Port((string)c!["server"]!)).ToHashSet();
        List<string> args = ["-r", CapturePath(name, ".pcapng")];
        foreach (var port in servers)
        {
            args.AddRange(["-d", $"tcp.port=={port},spice"]);
        }

        args.AddRange(["-Y", "spice", "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "tcp.srcport", "-e", "tcp.dstport",
            "-e", "spice.message_type", "-e", "_ws.malformed"]);
        var result = await ProcessRunner.RunAsync("tshark", args, TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, result.Stderr);
        var frames = new List<TsharkFrame>();
        foreach (var line in result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split('|');
            var from = int.Parse(fields[1], CultureInfo.InvariantCulture);
            var to = int.Parse(fields[2], CultureInfo.InvariantCulture);
            var fromClient = servers.Contains(to);
            var types = fields[3].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray();
            frames.Add(new TsharkFrame(double.Parse(fields[0], CultureInfo.InvariantCulture), fromClient ? from : to, fromClient, types, fields[4].Length > 0));
        }

        return [.. frames];
    }

    [GeneratedRegex(@"^(link|link-reply|ticket|link-result|[A-Z][A-Z_]*[A-Z])$")]
    private static partial Regex MessageName();

    [GeneratedRegex(@"migration-started host=\S+ port=(\d+)")]
    private static partial Regex ClientTarget();

    [GeneratedRegex(@"RESULT client=0 .* port=(\d+) ")]
    private static partial Regex ClientResult();

    [GeneratedRegex(@"^\s*(\d+\.\d+) EVENT client=0 migration-started", RegexOptions.Multiline)]
    private static partial Regex ClientStarted();

    [GeneratedRegex(@"^\s*(\d+\.\d+) EVENT client=0 migration-state none", RegexOptions.Multiline)]
    private static partial Regex ClientNone();

    [GeneratedRegex(@"^\s*(\d+\.\d+) EVENT client=0 main opened", RegexOptions.Multiline)]
    private static partial Regex ClientOpened();
}
