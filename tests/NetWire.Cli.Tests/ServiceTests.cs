using System.Globalization;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Cli.Tests;

/// <summary>
/// Running netwire as a service: <c>--version</c> names version and commit, and the systemd units
/// in tools/systemd pass <c>systemd-analyze verify</c> (Debian's systemd 252) with no complaint,
/// keep their sandbox (<c>systemd-analyze security</c> rates them), and their ExecStart command
/// line is one <c>netwire serve</c> accepts.
/// </summary>
public sealed partial class ServiceTests
{
    private static readonly string s_units = Path.Combine(RepoPaths.Root, "tools", "systemd");

    [Fact]
    public async Task Version_PrintsVersionAndCommit()
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "--version"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, result.ExitCode);
        Assert.Matches(VersionLine(), result.Stdout.Trim());
        Assert.Equal(VersionInfo.Text, result.Stdout.Trim());
    }

    [Fact]
    [Trait("Category", "Host")]
    public async Task Units_PassSystemdAnalyzeVerify_AndStaySandboxed()
    {
        HostRequirements.RequireCommand("systemd-analyze");
        var root = Directory.CreateTempSubdirectory("nwunit-").FullName;
        try
        {
            // An offline root: systemd's own units (sysinit.target and the rest the units pull in),
            // ours, and an executable where ExecStart looks for netwire.
            CopyTree("/usr/lib/systemd/system", Path.Combine(root, "usr/lib/systemd/system"));
            var system = Directory.CreateDirectory(Path.Combine(root, "etc/systemd/system")).FullName;
            foreach (var unit in Directory.GetFiles(s_units, "*.service"))
            {
                File.Copy(unit, Path.Combine(system, Path.GetFileName(unit)));
            }

            var bin = Directory.CreateDirectory(Path.Combine(root, "usr/local/bin")).FullName;
            await File.WriteAllTextAsync(Path.Combine(bin, "netwire"), "#!/bin/sh\n", TestContext.Current.CancellationToken);
            File.SetUnixFileMode(Path.Combine(bin, "netwire"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

            string[] units = ["netwire.service", "netwire-bridge@netwire0.service"];
            var verify = await ProcessRunner.RunAsync("systemd-analyze", ["verify", $"--root={root}", .. units.Select(u => "/etc/systemd/system/" + u)], TimeSpan.FromSeconds(60));
            Assert.True(verify.ExitCode == 0 && verify.Stdout.Trim().Length == 0 && verify.Stderr.Trim().Length == 0, $"systemd-analyze verify: exit {verify.ExitCode}\n{verify.Stdout}{verify.Stderr}");

            // The same check fails on a unit that is wrong, so a clean result means something.
            var broken = Path.Combine(system, "broken.service");
            await File.WriteAllTextAsync(broken, File.ReadAllText(Path.Combine(system, "netwire.service")).Replace("ProtectSystem=strict", "ProtectSystem=everything", StringComparison.Ordinal), TestContext.Current.CancellationToken);
            var bad = await ProcessRunner.RunAsync("systemd-analyze", ["verify", $"--root={root}", "/etc/systemd/system/broken.service"], TimeSpan.FromSeconds(60));
            Assert.Contains("protect system", bad.Stdout + bad.Stderr, StringComparison.OrdinalIgnoreCase);
            File.Delete(broken);

            foreach (var (unit, most) in new[] { ("netwire.service", 2.0), ("netwire-bridge@netwire0.service", 3.0) })
            {
                var security = await ProcessRunner.RunAsync("systemd-analyze", ["security", "--offline=true", $"--root={root}", "--no-pager", unit], TimeSpan.FromSeconds(60));
                var level = ExposureLevel().Match(security.Stdout + security.Stderr);
                Assert.True(level.Success, security.Stdout + security.Stderr);
                Assert.True(double.Parse(level.Groups[1].Value, CultureInfo.InvariantCulture) <= most, $"{unit}: {level.Value}");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task GatewayUnitsCommandLine_StartsServe()
    {
        var line = File.ReadAllLines(Path.Combine(s_units, "netwire.service")).Single(l => l.StartsWith("ExecStart=", StringComparison.Ordinal));
        var dir = Directory.CreateTempSubdirectory("nwsvc-").FullName;
        try
        {
            // A free SPICE port, and no generated password: as root it would go to /run/netwire.
            var words = line["ExecStart=/usr/local/bin/netwire ".Length..].Replace("/run/netwire", dir, StringComparison.Ordinal).Split(' ');
            await using var serve = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, .. words, "--spice-port", "0", "--disable-ticketing"],
                new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = dir });
            await serve.WaitForLineAsync(l => l.Contains("SPICE server listening", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            await serve.WaitForLineAsync(l => l.Contains($"addr.path={dir}/netwire.sock", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            // The control socket starts after the wire and the SPICE server: wait for it, then ask it.
            var qmp = Path.Combine(dir, "qmp.sock");
            for (var i = 0; i < 600 && !File.Exists(qmp); i++)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            var wire = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", $"unix:{qmp}", "query-wire"], TimeSpan.FromSeconds(60));
            Assert.True(wire.ExitCode == 0, wire.Stdout + wire.Stderr);
            serve.Terminate();
            Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
        {
            var target = Path.Combine(to, entry.Name);
            if (entry.LinkTarget is { } link)
            {
                File.CreateSymbolicLink(target, link);
            }
            else if (entry is DirectoryInfo)
            {
                CopyTree(entry.FullName, target);
            }
            else
            {
                File.Copy(entry.FullName, target);
            }
        }
    }

    [GeneratedRegex(@"^netwire \d+\.\d+\.\d+\S* \(commit ([0-9a-f]{40}|unknown)\) \.NET \d+\.\d+")]
    private static partial Regex VersionLine();

    [GeneratedRegex(@"Overall exposure level for \S+: (\d+\.\d+)")]
    private static partial Regex ExposureLevel();
}
