using System.Globalization;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// A diskless QEMU guest (<c>-boot n</c>, virtio-net with QEMU's own iPXE ROM) boots through
/// <c>netwire serve --tftp DIR --bootfile boot.ipxe</c>: SeaBIOS runs iPXE, iPXE takes a DHCP
/// lease whose bootfile is an iPXE script, fetches it, the test guest's kernel and its initramfs
/// over TFTP, boots them, and the guest takes a lease again (with the search domains and host
/// name of DHCP options 119 and 12) and reports in. The same guest then boots from QEMU's
/// <c>-netdev user,tftp=,bootfile=</c> as the reference, with the same results. Both boot times
/// (QEMU start to the guest's first marker) are printed.
/// </summary>
[Trait("Category", "Host")]
public sealed class PxeBootTests
{
    private const string Script = """
        . /lib/nw.sh
        mark RESOLV $(grep '^search' /etc/resolv.conf)
        mark HOSTNAME $(hostname)
        """;

    [Fact]
    public async Task DisklessGuest_BootsThroughIpxeOverTftp_LikeOnQemusUserNetwork()
    {
        HostRequirements.RequireCommand("qemu-system-x86_64");
        HostRequirements.RequireGuestImage();
        HostRequirements.RequireFile("/usr/lib/ipxe/qemu/efi-virtio.rom", "apt-get install ipxe-qemu (QEMU's virtio-net boot ROM)");
        var dir = Directory.CreateTempSubdirectory("nwpxe-").FullName;
        try
        {
            var tftp = Directory.CreateDirectory(Path.Combine(dir, "tftp")).FullName;
            File.Copy(RepoPaths.GuestKernel, Path.Combine(tftp, "vmlinuz"));
            QemuGuest.WriteInitrd(Script, Path.Combine(tftp, "initrd.img"));
            await File.WriteAllTextAsync(Path.Combine(tftp, "boot.ipxe"), """
                #!ipxe
                kernel vmlinuz console=ttyS0 panic=-1 quiet no_timer_check nw.ip=dhcp ipv6.disable=1
                initrd initrd.img
                boot
                """, TestContext.Current.CancellationToken);

            var socket = Path.Combine(dir, "g.sock");
            TimeSpan netwire;
            await using (var serve = ProcessRunner.Start("dotnet",
            [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{socket}", "--spice-port", "0", "--disable-ticketing",
                "--tftp", tftp, "--bootfile", "boot.ipxe",
                "--dns-search", "example.test", "--dns-search", "lab.example.test", "--domain", "example.test", "--hostname", "pxe-guest",
            ]))
            {
                await serve.WaitForLineAsync(l => l.Contains("SPICE server listening", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                netwire = await BootAsync($"stream,id=n0,server=off,addr.type=unix,addr.path={socket}");
                serve.Terminate();
                Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                Assert.Contains(serve.StderrLines, l => l.Contains("gateway:", StringComparison.Ordinal) && l.Contains("DHCP leases", StringComparison.Ordinal));
            }

            var reference = await BootAsync(
                $"user,id=n0,tftp={tftp},bootfile=boot.ipxe,dnssearch=example.test,dnssearch=lab.example.test,domainname=example.test,hostname=pxe-guest");
            TestContext.Current.TestOutputHelper?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"PXE boot to the guest's first marker: netwire {netwire.TotalSeconds:0.0} s, -netdev user {reference.TotalSeconds:0.0} s"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Boots the diskless guest on <paramref name="netdev"/>, checks what it reports, and returns the time to its first marker.</summary>
    private static async Task<TimeSpan> BootAsync(string netdev)
    {
        await using var guest = QemuGuest.Start(new QemuGuestOptions { Netdev = netdev, NetBoot = true, MemoryMiB = 256 });
        await guest.WaitForMarkerAsync("BOOT", TimeSpan.FromSeconds(300));
        var booted = guest.Elapsed;
        Assert.Equal("10.0.2.15/24", await guest.WaitForMarkerAsync("NET", TimeSpan.FromSeconds(120)));
        Assert.Equal("search example.test lab.example.test", await guest.WaitForMarkerAsync("RESOLV", TimeSpan.FromSeconds(60)));
        Assert.Equal("pxe-guest", await guest.WaitForMarkerAsync("HOSTNAME", TimeSpan.FromSeconds(60)));
        Assert.Equal(0, await guest.WaitForTestExitAsync(TimeSpan.FromSeconds(60)));
        await guest.WaitForExitAsync(TimeSpan.FromSeconds(60));
        return booted;
    }
}
