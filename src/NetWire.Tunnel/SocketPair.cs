using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace NetWire.Tunnel;

/// <summary>
/// A connected pair of AF_UNIX stream sockets (socketpair(2)). The gateway's TCP endpoint gets
/// one end as the far side of a guest connection; the tunnel relays the other end over
/// SOCKET_DATA. The kernel bounds what each end buffers (SO_SNDBUF), so a stalled side stops
/// the other's writes instead of growing a queue.
/// </summary>
internal static partial class SocketPair
{
    private const int AfUnix = 1;
    private const int SockStream = 1;
    private const int SockCloexec = 0x80000;
    private const short PollRdHup = 0x2000;
    private const short PollHup = 0x10;

    /// <summary>Creates the pair; throws <see cref="SocketException"/> when the kernel refuses (fd limit).</summary>
    public static (Socket Near, Socket Far) Create()
    {
        Span<int> fds = stackalloc int[2];
        if (socketpair(AfUnix, SockStream | SockCloexec, 0, ref fds[0]) != 0)
        {
            throw new SocketException(Marshal.GetLastPInvokeError());
        }

        return (Wrap(fds[0]), Wrap(fds[1]));
    }

    /// <summary>
    /// True when the other end has been closed altogether (POLLHUP), as opposed to only shut for
    /// writing (a FIN): the guest connection behind it is gone.
    /// </summary>
    public static bool PeerClosed(Socket socket)
    {
        try
        {
            var poll = new PollFd { Fd = (int)socket.SafeHandle.DangerousGetHandle(), Events = PollRdHup };
            return Poll(ref poll, 1, 0) > 0 && (poll.Revents & PollHup) != 0;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    /// <summary>
    /// What is queued for reading on <paramref name="socket"/>, read with MSG_PEEK (the queue stays
    /// as it is; a stream socket's peek runs across its buffers). Empty when nothing is queued.
    /// </summary>
    public static byte[] Peek(Socket socket)
    {
        try
        {
            var available = socket.Available;
            if (available <= 0)
            {
                return [];
            }

            var buffer = new byte[available];
            var read = socket.Receive(buffer, SocketFlags.Peek);
            return read == available ? buffer : buffer[..read];
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return [];
        }
    }

    private static Socket Wrap(int fd) => new(new SafeSocketHandle(fd, ownsHandle: true));

    [LibraryImport("libc", EntryPoint = "socketpair", SetLastError = true)]
    private static partial int socketpair(int domain, int type, int protocol, ref int fds);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, ulong count, int timeout);

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }
}
