using System.Runtime.InteropServices;
using System.Text;

namespace NetWire.Bench;

/// <summary>
/// A TAP device's file descriptor opened the plain way (IFF_TAP | IFF_NO_PI): the baseline the
/// bridge is compared with. One frame per read(2) or write(2).
/// </summary>
internal sealed unsafe class TapFd : IDisposable
{
    private const nuint TunSetIff = 0x400454ca;
    private const short IffTap = 0x0002;
    private const short IffNoPi = 0x1000;

    /// <summary>The descriptor; -1 once disposed.</summary>
    private int _fd;

    private TapFd(int fd)
    {
        _fd = fd;
    }

    /// <summary>The descriptor, for poll and the loops.</summary>
    public int Fd => _fd;

    [StructLayout(LayoutKind.Sequential, Size = 40)]
    private struct IfReq
    {
        public fixed byte Name[16];
        public short Flags;
    }

    /// <summary>Attaches to TAP <paramref name="name"/>; <paramref name="nonBlocking"/> for loops that must notice a stop.</summary>
    public static TapFd Open(string name, bool nonBlocking)
    {
        var flags = Native.ORdWr | Native.OCloExec | (nonBlocking ? Native.ONonBlock : 0);
        var fd = Native.Open("/dev/net/tun", flags);
        if (fd < 0)
        {
            throw Native.Failure("open /dev/net/tun");
        }

        var request = default(IfReq);
        var written = Encoding.UTF8.GetBytes(name, new Span<byte>(request.Name, 15));
        request.Name[written] = 0;
        request.Flags = IffTap | IffNoPi;
        if (Native.Ioctl(fd, TunSetIff, &request) < 0)
        {
            var error = Native.Failure($"attach TAP {name}");
            Native.Close(fd);
            throw error;
        }

        return new TapFd(fd);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            Native.Close(fd);
        }
    }
}
