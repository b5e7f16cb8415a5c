namespace NetWire.Testing;

/// <summary>How to boot a <see cref="QemuGuest"/>.</summary>
public sealed record QemuGuestOptions
{
    /// <summary>
    /// The whole value of QEMU's <c>-netdev</c> option, for example
    /// <c>stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/x.sock</c>. The NIC is wired to id
    /// <c>n0</c>; when the value has no <c>id=</c>, <c>id=n0</c> is added.
    /// </summary>
    public required string Netdev { get; init; }

    /// <summary>The guest NIC's MAC address.</summary>
    public string Mac { get; init; } = "52:54:00:12:34:56";

    /// <summary>
    /// Extra kernel command line, for example <c>nw.ip=10.0.2.15/24 nw.gw=10.0.2.1</c> or <c>nw.ip=dhcp</c>
    /// (see tools/guest/README.md). It follows <c>console=ttyS0 panic=-1 quiet no_timer_check</c>.
    /// </summary>
    public string KernelArgs { get; init; } = "";

    /// <summary>
    /// The guest's <c>/test.sh</c>, run by its /init after the network is configured; null for none.
    /// It can <c>. /lib/nw.sh</c> and call <c>mark NAME text</c> to print <c>NW:NAME text</c>.
    /// </summary>
    public string? TestScript { get; init; }

    /// <summary>Runs QEMU under <c>ip netns exec</c> in this namespace (for TAP backends); null for the caller's namespace.</summary>
    public string? NetnsName { get; init; }

    /// <summary>Guest RAM. 64 MiB does not boot this kernel and initramfs; 128 MiB does.</summary>
    public int MemoryMiB { get; init; } = 128;

    /// <summary>The QEMU NIC model: <c>virtio-net-pci</c> (fast) or <c>e1000</c> (about 3 s slower to get a lease).</summary>
    public string NicModel { get; init; } = "virtio-net-pci";

    /// <summary>More QEMU arguments, for example <c>-object filter-dump,id=f0,netdev=n0,file=x.pcap</c>.</summary>
    public IReadOnlyList<string> ExtraQemuArgs { get; init; } = [];

    /// <summary>
    /// The kernel to boot; null picks <c>vmlinux</c> from the guest folder when the build made one (QEMU
    /// loads it through its PVH entry, about 5 s faster under TCG), else <c>vmlinuz</c>.
    /// </summary>
    public string? Kernel { get; init; }

    /// <summary>The folder with vmlinuz and initramfs.cpio.gz; null for <see cref="RepoPaths.GuestDir"/>.</summary>
    public string? GuestDir { get; init; }

    /// <summary>
    /// Boots from the network instead of <c>-kernel</c>: <c>-boot n</c> through SeaBIOS and the NIC's
    /// default iPXE option ROM (Debian's ipxe-qemu), with <c>-vga std</c> for the firmware's console.
    /// The kernel, initrd and command line then come from the network (an iPXE script over TFTP);
    /// <see cref="KernelArgs"/>, <see cref="TestScript"/> and <see cref="Kernel"/> are not used (see
    /// <see cref="QemuGuest.WriteInitrd"/>).
    /// </summary>
    public bool NetBoot { get; init; }

    /// <summary>The QEMU binary.</summary>
    public string QemuBinary { get; init; } = "qemu-system-x86_64";

    /// <summary>A QMP socket for QEMU (<c>-qmp unix:PATH,server=on,wait=off</c>); null for none.</summary>
    public string? QmpSocket { get; init; }

    /// <summary>
    /// A migration target: <c>-incoming URI -S</c> (the VM waits for the source's state, then stays
    /// paused until <c>cont</c>). Its other options must be the source's, so pass the source's
    /// <see cref="QemuGuest.Initrd"/> as <see cref="Initrd"/> rather than a <see cref="TestScript"/>.
    /// </summary>
    public string? Incoming { get; init; }

    /// <summary>An initrd to boot as it is (for a migration target, the source's); null builds it from the base image and <see cref="TestScript"/>.</summary>
    public string? Initrd { get; init; }
}
