using System.Runtime.InteropServices;
using System.Text;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Tap;

/// <summary>
/// Opening a Linux TAP device through /dev/net/tun (IFF_TAP | IFF_NO_PI, with IFF_VNET_HDR when
/// offloads are wanted), turning its offloads on (TUNSETOFFLOAD) and bringing it up.
/// </summary>
internal static unsafe class TunTap
{
    private const nuint TunSetIff = 0x400454ca;
    private const nuint TunSetOffload = 0x400454d0;
    private const nuint SiocGIfFlags = 0x8913;
    private const nuint SiocSIfFlags = 0x8914;
    private const short IffTap = 0x0002;
    private const short IffNoPi = 0x1000;
    private const short IffVnetHdr = 0x4000;
    private const uint TunFChecksum = 0x01;
    private const uint TunFTso4 = 0x02;
    private const uint TunFTso6 = 0x04;
    private const short IffUp = 0x1;
    private const nuint SiocGIfHwAddr = 0x8927;

    /// <summary>IFNAMSIZ: names are at most 15 bytes plus the terminator.</summary>
    public const int MaxNameLength = 15;

    /// <summary>struct ifreq: a 16-byte name then a union whose first member is the 16-bit flags.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 40)]
    private struct IfReq
    {
        public fixed byte Name[16];
        public short Flags;
    }

    /// <summary>
    /// Opens (creating if needed) the TAP <paramref name="name"/>, non-blocking; returns its fd.
    /// With <paramref name="vnetHeader"/> every frame read or written carries a
    /// <see cref="VirtioNetHeader"/> first. Returns -1 instead of failing when another process has
    /// the TAP open and <paramref name="busyIsError"/> is false.
    /// </summary>
    public static int Open(string name, bool vnetHeader = false, bool busyIsError = true)
    {
        ValidateName(name);
        var fd = Libc.Open("/dev/net/tun", Libc.ORdWr | Libc.ONonBlock | Libc.OCloExec);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new WireSetupException(errno switch
            {
                Libc.ENoEnt => "cannot open /dev/net/tun: no such device (is the tun module loaded?)",
                Libc.EAccess or Libc.EPerm => "cannot open /dev/net/tun: permission denied (run as root or with CAP_NET_ADMIN)",
                _ => $"cannot open /dev/net/tun: {Libc.Describe(errno)}",
            });
        }

        var request = default(IfReq);
        SetName(ref request, name);
        request.Flags = (short)(IffTap | IffNoPi | (vnetHeader ? IffVnetHdr : 0));
        if (Libc.Ioctl(fd, TunSetIff, &request) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Libc.Close(fd);
            if (errno == Libc.EBusy && !busyIsError)
            {
                return -1;
            }

            throw new WireSetupException(errno switch
            {
                Libc.EPerm or Libc.EAccess => $"cannot attach TAP '{name}': permission denied (creating or attaching a TAP needs CAP_NET_ADMIN, or a TAP made with 'ip tuntap add {name} mode tap user <you>')",
                Libc.EBusy => $"cannot attach TAP '{name}': device busy (another process has it open)",
                Libc.EInval => $"cannot attach TAP '{name}': an interface of that name exists and is not a TAP",
                _ => $"cannot attach TAP '{name}': {Libc.Describe(errno)}",
            });
        }

        return fd;
    }

    /// <summary>
    /// Tells the kernel which offloads the TAP's reader takes (TUNSETOFFLOAD): with
    /// <see cref="WireOffloads.Checksum"/> frames from the kernel may leave their checksum to us,
    /// with TSO they may be TCP segments of up to 64 KiB. Needs a TAP opened with a vnet header.
    /// False with the errno when the kernel refuses (the TAP then stays on plain frames).
    /// </summary>
    public static bool TrySetOffloads(int fd, WireOffloads offloads, out int errno)
    {
        uint flags = 0;
        if ((offloads & WireOffloads.Checksum) != 0)
        {
            // TSO without checksum offload is refused by the kernel (tun's set_offload).
            flags |= TunFChecksum;
            flags |= (offloads & WireOffloads.Tso4) != 0 ? TunFTso4 : 0;
            flags |= (offloads & WireOffloads.Tso6) != 0 ? TunFTso6 : 0;
        }

        // The argument is the flags themselves, not a pointer to them.
        if (Libc.Ioctl(fd, TunSetOffload, (void*)flags) < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return false;
        }

        errno = 0;
        return true;
    }

    /// <summary>Sets IFF_UP on <paramref name="name"/>; false with a reason when not permitted.</summary>
    public static bool TryBringUp(string name, out string? error)
    {
        var sock = Libc.Socket(Libc.AfInet, Libc.SockDgram, 0);
        if (sock < 0)
        {
            error = Libc.Describe(Marshal.GetLastPInvokeError());
            return false;
        }

        try
        {
            var request = default(IfReq);
            SetName(ref request, name);
            if (Libc.Ioctl(sock, SiocGIfFlags, &request) < 0)
            {
                error = Libc.Describe(Marshal.GetLastPInvokeError());
                return false;
            }

            if ((request.Flags & IffUp) != 0)
            {
                error = null;
                return true;
            }

            request.Flags |= IffUp;
            if (Libc.Ioctl(sock, SiocSIfFlags, &request) < 0)
            {
                error = Libc.Describe(Marshal.GetLastPInvokeError());
                return false;
            }

            error = null;
            return true;
        }
        finally
        {
            Libc.Close(sock);
        }
    }

    /// <summary>The MAC address of <paramref name="name"/> in this process's network namespace.</summary>
    public static byte[] ReadMac(string name)
    {
        var sock = Libc.Socket(Libc.AfInet, Libc.SockDgram, 0);
        if (sock < 0)
        {
            throw new WireSetupException($"cannot read the MAC of '{name}': {Libc.Describe(Marshal.GetLastPInvokeError())}");
        }

        try
        {
            var request = default(IfReq);
            SetName(ref request, name);
            if (Libc.Ioctl(sock, SiocGIfHwAddr, &request) < 0)
            {
                throw new WireSetupException($"cannot read the MAC of '{name}': {Libc.Describe(Marshal.GetLastPInvokeError())}");
            }

            // ifr_hwaddr is a struct sockaddr after the name: a 2-byte family, then the address.
            var raw = (byte*)&request;
            return new ReadOnlySpan<byte>(raw + 18, 6).ToArray();
        }
        finally
        {
            Libc.Close(sock);
        }
    }

    public static void ValidateName(string name)
    {
        if (name.Length == 0 || Encoding.UTF8.GetByteCount(name) > MaxNameLength || name.Contains('/') || name.Contains(' ') || name is "." or "..")
        {
            throw new WireSetupException($"invalid interface name '{name}' (1 to {MaxNameLength} bytes, no '/' or spaces)");
        }
    }

    private static void SetName(ref IfReq request, string name)
    {
        fixed (byte* dst = request.Name)
        {
            var written = Encoding.UTF8.GetBytes(name, new Span<byte>(dst, 16));
            dst[written] = 0;
        }
    }
}
