namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// A QEMU guest downloads about 12 MB at 1 MB/s from a host loopback server through the gateway
/// of <c>netwire serve</c> A while the VM migrates to a second QEMU and the appliance to B, as
/// docs/migration.md ("Whole-VM migration") tells a user to do it, with tools/migrate-vm.py: the
/// download completes on the target with the right length and sha256, and tcpdump sees no RST
/// on the server's port.
/// </summary>
[Trait("Category", "Host")]
public sealed class VmMigrationTests
{
    [Fact]
    public async Task GuestDownload_ThroughTheGateway_CompletesOnTheTarget_WithoutReset()
    {
        await using var run = await VmDownloadRun.StartAsync();
        var a = await run.StartApplianceAsync("a", incoming: false, "--disable-ticketing", "--allow-host-loopback");
        var b = await run.StartApplianceAsync("b", incoming: true, "--disable-ticketing", "--allow-host-loopback");
        await run.StartGuestAsync(a, "10.0.2.2", run.ServerPort);

        var flows = (await run.MigrateAsync(a, b)).GetProperty("flows");
        Assert.True(flows.GetProperty("tcp").GetInt64() >= 1, $"{flows}\n{run.Logs()}");
        Assert.True(flows.GetProperty("reset").GetInt64() == 0, $"{flows}\n{run.Logs()}");

        await run.AssertDownloadCompleteAsync();
    }
}
