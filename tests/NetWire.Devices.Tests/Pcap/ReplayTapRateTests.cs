using System.Globalization;
using System.Text.RegularExpressions;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>
/// A capture replayed with --pps into a TAP in a namespace the test creates: the namespace's kernel
/// receives every frame (the TAP's rx counter), at the requested rate within a generous tolerance.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class ReplayTapRateTests
{
    [Fact]
    public async Task ReplayAtPps_IntoTapInNamespace_KernelSeesEveryFrame_AtTheRequestedRate()
    {
        HostRequirements.RequireRoot();
        const int Frames = 6000;
        const int Pps = 2500;
        var dir = Directory.CreateTempSubdirectory("nwreplay-").FullName;
        try
        {
            // 500 frames of 60 to 259 bytes, looped until the limit: 2.4 s at the requested rate.
            var records = Enumerable.Range(0, 500).Select(i => PcapRecord((uint)i, 0, Frame((byte)i, 60 + (i % 200)))).ToArray();
            var file = Write(dir, "in.pcap", Concat([PcapHeader(), .. records]));
            await using var ns = await NetNamespace.CreateAsync();
            var tap = "nwr" + (Environment.ProcessId % 100000);
            (await ns.ExecShellAsync($"ip tuntap add dev {tap} mode tap && sysctl -qw net.ipv6.conf.{tap}.disable_ipv6=1 && ip link set {tap} up")).EnsureSuccess();

            var result = await ns.ExecAsync(
                ["dotnet", RepoPaths.NetwireDll, "replay", file, "--into", $"tap:{tap}", "--pps", Pps.ToString(CultureInfo.InvariantCulture), "--loop", "20", "--limit", Frames.ToString(CultureInfo.InvariantCulture)],
                TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 0, result.Stderr);
            var rx = long.Parse((await ns.ExecAsync("cat", $"/sys/class/net/{tap}/statistics/rx_packets")).EnsureSuccess().Stdout.Trim(), CultureInfo.InvariantCulture);
            Assert.True(rx >= Frames, $"the namespace's kernel saw {rx} of {Frames} frames\n{result.Stderr}");

            var elapsed = double.Parse(Elapsed().Match(result.Stderr).Groups[1].Value, CultureInfo.InvariantCulture);
            var rate = Frames / elapsed;
            Assert.InRange(rate, Pps * 0.85, Pps * 1.1);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [GeneratedRegex(@"elapsed\s+([0-9.]+) s")]
    private static partial Regex Elapsed();
}
