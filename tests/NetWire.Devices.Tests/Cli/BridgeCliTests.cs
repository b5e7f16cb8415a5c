using System.Net.Sockets;
using NetWire.Devices.Tests.Host;
using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Cli;

/// <summary>The <c>netwire</c> program as users meet it: help, exit codes, error messages.</summary>
public sealed class BridgeCliTests
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task Help_ListsTheVerbsAndTheSpecForms()
    {
        var root = await NetwireAsync("--help");
        Assert.Equal(0, root.ExitCode);
        Assert.Contains("bridge", root.Stdout, StringComparison.Ordinal);
        Assert.Contains("status", root.Stdout, StringComparison.Ordinal);

        var bridge = await NetwireAsync("bridge", "--help");
        Assert.Equal(0, bridge.ExitCode);
        Assert.Contains("stream:unix:PATH[,connect]", bridge.Stdout, StringComparison.Ordinal);
        Assert.Contains("tap:NAME", bridge.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--guest", "stream:udp:1.2.3.4:5")]
    [InlineData("--host", "eth0")]
    [InlineData("--queue-frames", "0")]
    public async Task BadArguments_ExitWithUsageCode_AndSayWhatIsValid(string option, string value)
    {
        string[] args = option == "--guest" ? ["bridge", option, value] : ["bridge", option, value, "--guest", "stream:unix:/tmp/never.sock"];
        var result = await NetwireAsync(args);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("netwire bridge:", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownVerb_IsAUsageError()
    {
        var result = await NetwireAsync("frobnicate");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("frobnicate", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BusyGuestSocket_ExitsWithSetupCode()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var path = Path.Combine(dir, "busy.sock");
        using var holder = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        holder.Bind(new UnixDomainSocketEndPoint(path));
        holder.Listen();

        var result = await NetwireAsync("bridge", "--guest", $"stream:unix:{path}", "--host", "tap:nwnever0");
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("busy", result.Stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(path), "the other process's socket must be left alone");
        Directory.Delete(dir, true);
    }

    [Fact]
    [Trait("Category", "Host")]
    public async Task TapWithoutPermission_ExitsWithSetupCode_AndExplains()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("setpriv");
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);
        var result = await ProcessRunner.RunAsync(
            "setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "dotnet", RepoPaths.NetwireDll, "bridge", "--guest", $"stream:unix:{dir}/g.sock", "--host", "tap:nwperm0"],
            TimeSpan.FromSeconds(60));
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("permission denied", result.Stderr, StringComparison.Ordinal);
        Directory.Delete(dir, true);
    }

    [Fact]
    [Trait("Category", "Host")]
    public async Task JunkOnTheGuestSocket_ClosesOnlyThatConnection_AndTheProcessServesTheNextGuest()
    {
        HostRequirements.RequireRoot();
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        await using var ns = await NetNamespace.CreateAsync();
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{dir}/g.sock", "tap:nwjunk0", ns, dir);
        await bridge.WaitForLogAsync("TAP nwjunk0 attached");

        using (var bad = await StreamClient.ConnectAsync($"{dir}/g.sock"))
        {
            await bad.SendRawAsync([0, 0, 0, 0]);
            Assert.True(await bad.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        }

        await bridge.WaitForLogAsync("frame length of 0");
        using (var half = await StreamClient.ConnectAsync($"{dir}/g.sock"))
        {
            await half.SendRawAsync([0, 0, 0x05, 0xea, 1, 2, 3]);
        }

        using var good = await StreamClient.ConnectAsync($"{dir}/g.sock");
        await good.SendFrameAsync(StreamClient.Frame(60, 1));
        await bridge.WaitForLogAsync("middle of a frame");
        await bridge.WaitForStatusAsync(s => BridgeProcess.End(s, "guest").GetProperty("rx_frames").GetInt64() == 1);
        Assert.False(bridge.Process.HasExited);

        var status = await bridge.StopAsync();
        var guest = BridgeProcess.End(status, "guest");
        Assert.Equal(1, guest.GetProperty("drops").GetProperty("bad_length").GetInt64());
        Assert.Equal(1, guest.GetProperty("drops").GetProperty("truncated").GetInt64());
        Assert.Equal(1, guest.GetProperty("rx_frames").GetInt64());
        Assert.Equal(3, guest.GetProperty("connections").GetInt64());
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task Status_ShowsATableOfTheCounters()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var file = Path.Combine(dir, "status.json");
        await File.WriteAllTextAsync(file, """
            {"state":"running","time":"2026-11-26T01:00:00Z","pid":42,"frames_in_flight":0,
             "ends":[{"name":"guest","device":"stream unix:/x","interface":"net_wire 1.1","rx_frames":7,"rx_bytes":700,
                      "tx_frames":3,"tx_bytes":300,"connections":1,"queued":0,"drops_total":2,"drops":{"bad_length":2,"kernel":0}}]}
            """);
        var table = await NetwireAsync("status", file);
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("dropped 2 (bad_length)", table.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"guest\s+7\s+700\s+3\s+300\s+2", table.Stdout);

        await File.WriteAllTextAsync(file, "not json");
        Assert.Equal(2, (await NetwireAsync("status", file)).ExitCode);
        Assert.Equal(3, (await NetwireAsync("status", Path.Combine(dir, "missing.json"))).ExitCode);
        Directory.Delete(dir, true);
    }
}
