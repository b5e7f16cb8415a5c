using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// The whole-VM migration of <see cref="VmMigrationTests"/> with the download going through a
/// tunnel service instead of the gateway's NAT (docs/migration.md, "Tunnel sockets" and
/// "Whole-VM migration"): a <c>netwire tunnel-client</c> process linked to <c>netwire serve
/// --tunnel</c> A publishes the loopback server into the guest's network; the QEMU guest downloads
/// about 12 MB at 1 MB/s from the service's virtual address while tools/migrate-vm.py --spice
/// links the client to B, moves the VM to a second QEMU and A to B. The download completes on the
/// target with the right length and sha256, the tunnel socket moved (none reset), the client
/// kept its connection to the server, and tcpdump sees no RST on the server's port.
/// </summary>
[Trait("Category", "Host")]
public sealed partial class VmTunnelMigrationTests
{
    private const string Password = "s3cret";

    [Fact]
    public async Task GuestDownload_ThroughATunnelService_CompletesOnTheTarget_WithoutReset()
    {
        await using var run = await VmDownloadRun.StartAsync();
        var a = await run.StartApplianceAsync("a", incoming: false, "--tunnel", "--password", Password);
        var b = await run.StartApplianceAsync("b", incoming: true, "--tunnel", "--password", Password);
        var client = run.Track("client", ProcessRunner.Start("dotnet", [
            RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{a.Spice}", "--password", Password,
            "--service", $"download=127.0.0.1:{run.ServerPort},port=80", "--log-level", "Information"]));
        var service = ServiceMapped().Match(await client.WaitForLineAsync(ServiceMapped().IsMatch, VmDownloadRun.Wait));
        await run.StartGuestAsync(a, service.Groups[1].Value, 80);

        var netwire = await run.MigrateAsync(a, b, "--spice", $"127.0.0.1:{b.Spice}");
        var flows = netwire.GetProperty("flows");
        Assert.True(flows.GetProperty("tunnel").GetInt64() == 1, $"{netwire}\n{run.Logs()}");
        Assert.True(flows.GetProperty("tcp").GetInt64() >= 1, $"{netwire}\n{run.Logs()}");
        Assert.True(flows.GetProperty("reset").GetInt64() == 0, $"{netwire}\n{run.Logs()}");

        await run.AssertDownloadCompleteAsync();
        Assert.Contains(a.Process.Lines, l => l.Text.Contains("1 sockets of 1 clients handed over", StringComparison.Ordinal));
        Assert.Contains(client.Lines, l => l.Text.Contains("1 sockets continue on the target", StringComparison.Ordinal));
    }

    [GeneratedRegex(@"^service download (\d+\.\d+\.\d+\.\d+):80 ")]
    private static partial Regex ServiceMapped();
}
