using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using NetWire.Stack.Interop;

namespace NetWire.Stack.Tcp;

/// <summary>
/// A TCP connection's host socket as the gateway's poller drives it: a non-blocking descriptor
/// read and written with plain system calls. Either opened here (a guest's connection: socket and
/// connect without the runtime's socket engine, which would register it with its own epoll thread)
/// or adopted from a <see cref="Socket"/> that someone else connected or accepted (a host forward,
/// a virtual service), which it then owns. Used under the gateway lock only.
/// </summary>
internal sealed unsafe class HostSocket
{
    /// <summary>The owner of an adopted descriptor; null when the descriptor was opened here.</summary>
    private readonly Socket? _socket;

    /// <summary>A <see cref="Socket"/> that took over a descriptor opened here (<see cref="Socket"/>); null until asked for.</summary>
    private Socket? _view;

    private HostSocket(int fd, Socket? socket)
    {
        Fd = fd;
        _socket = socket;
    }

    /// <summary>The descriptor; -1 once closed.</summary>
    public int Fd { get; private set; }

    /// <summary>
    /// The descriptor as a <see cref="System.Net.Sockets.Socket"/>, for socket options the
    /// runtime's API takes (a migration's TCP_REPAIR dump and restore); used synchronously only,
    /// so the runtime never registers it with an event loop of its own. A descriptor opened here
    /// belongs to that socket from then on, and <see cref="Close"/> closes it through the socket.
    /// </summary>
    public Socket Socket => _socket ?? (_view ??= new Socket(new SafeSocketHandle(Fd, ownsHandle: true)));

    /// <summary>
    /// A new non-blocking socket with TCP_NODELAY whose connect to <paramref name="target"/> has
    /// started; null with the errno when the socket or the connect failed at once.
    /// <paramref name="connected"/> is true when the connect completed before this returned (as a
    /// connect to a local server usually does); otherwise its outcome is <see cref="PendingError"/>
    /// once the socket is writable. With a <paramref name="source"/> (the gateway's outbound
    /// address) the socket is bound to it, port chosen by the kernel, before the connect.
    /// </summary>
    public static HostSocket? Connect(IPEndPoint target, IPAddress? source, out bool connected, out int errno)
    {
        connected = false;
        var ipv6 = target.AddressFamily == AddressFamily.InterNetworkV6;
        var fd = Libc.Socket(ipv6 ? Libc.AfInet6 : Libc.AfInet, Libc.SockStream | Libc.SockNonBlock | Libc.SockCloExec, 0);
        if (fd < 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }

        var one = 1;
        Libc.SetSockOpt(fd, Libc.IpProtoTcp, Libc.TcpNoDelay, &one, sizeof(int));

        var address = stackalloc byte[28];
        if (source is not null)
        {
            if (!WriteSockAddr(new IPEndPoint(source, 0), ipv6, address))
            {
                Libc.Close(fd);
                errno = Libc.EInval;
                return null;
            }

            if (Libc.Bind(fd, address, ipv6 ? 28 : 16) != 0)
            {
                // The outbound address left this host (EADDRNOTAVAIL): the guest sees a refusal.
                errno = Marshal.GetLastPInvokeError();
                Libc.Close(fd);
                return null;
            }
        }

        if (!WriteSockAddr(target, ipv6, address))
        {
            Libc.Close(fd);
            errno = Libc.EInval;
            return null;
        }

        if (Libc.Connect(fd, address, ipv6 ? 28 : 16) == 0)
        {
            connected = true;
            errno = 0;
            return new HostSocket(fd, null);
        }

        errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.EInProgress)
        {
            // A connect to this host (a loopback server) has usually finished inside the call: the
            // kernel ran the handshake before returning. A second connect says so (0 or EISCONN;
            // EALREADY while it is still pending; a refusal's errno), and the guest gets its
            // SYN-ACK or RST on this turn instead of after a round through the poller.
            var again = Libc.Connect(fd, address, ipv6 ? 28 : 16) == 0 ? Libc.EIsConn : Marshal.GetLastPInvokeError();
            if (again == Libc.EIsConn)
            {
                connected = true;
                errno = 0;
                return new HostSocket(fd, null);
            }

            if (again is Libc.EAlready or Libc.EInProgress or Libc.EIntr)
            {
                return new HostSocket(fd, null);
            }

            errno = again;
        }

        Libc.Close(fd);
        return null;
    }

    /// <summary>
    /// Writes struct sockaddr_in (16 bytes) or sockaddr_in6 (28): family in host order, port and
    /// address in network order, the rest (IPv6 flow label, scope) zero. False when the address is
    /// not of the family.
    /// </summary>
    private static bool WriteSockAddr(IPEndPoint endPoint, bool ipv6, byte* address)
    {
        new Span<byte>(address, 28).Clear();
        *(ushort*)address = (ushort)(ipv6 ? Libc.AfInet6 : Libc.AfInet);
        address[2] = (byte)(endPoint.Port >> 8);
        address[3] = (byte)endPoint.Port;
        return endPoint.AddressFamily == (ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork)
            && endPoint.Address.TryWriteBytes(new Span<byte>(address + (ipv6 ? 8 : 4), ipv6 ? 16 : 4), out _);
    }

    /// <summary>Takes over a connected or accepted <paramref name="socket"/>, switched to non-blocking.</summary>
    public static HostSocket Adopt(Socket socket)
    {
        socket.Blocking = false;
        var fd = (int)socket.Handle;
        var flags = Libc.Fcntl(fd, Libc.FGetFl, 0);
        if (flags >= 0 && (flags & Libc.ONonBlock) == 0)
        {
            Libc.Fcntl(fd, Libc.FSetFl, flags | Libc.ONonBlock);
        }

        return new HostSocket(fd, socket);
    }

    /// <summary>The outcome of a connect that was in progress: 0 when connected, else its errno (SO_ERROR).</summary>
    public int PendingError()
    {
        int error;
        var length = sizeof(int);
        return Libc.GetSockOpt(Fd, Libc.SolSocket, Libc.SoError, &error, &length) == 0 ? error : Marshal.GetLastPInvokeError();
    }

    /// <summary>recv(2) without blocking: bytes read, 0 at end of stream, -1 with <paramref name="errno"/> (EAGAIN: nothing now).</summary>
    public nint Receive(Span<byte> buffer, out int errno)
    {
        fixed (byte* data = buffer)
        {
            while (true)
            {
                var n = Libc.Recv(Fd, data, buffer.Length, Libc.MsgDontWait);
                errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (n >= 0 || errno != Libc.EIntr)
                {
                    return n;
                }
            }
        }
    }

    /// <summary>send(2) without blocking or SIGPIPE: bytes taken, or -1 with <paramref name="errno"/> (EAGAIN: no room now).</summary>
    public nint Send(ReadOnlySpan<byte> buffer, out int errno)
    {
        fixed (byte* data = buffer)
        {
            while (true)
            {
                var n = Libc.Send(Fd, data, buffer.Length, Libc.MsgDontWait | Libc.MsgNoSignal);
                errno = n < 0 ? Marshal.GetLastPInvokeError() : 0;
                if (n >= 0 || errno != Libc.EIntr)
                {
                    return n;
                }
            }
        }
    }

    /// <summary>shutdown(SHUT_WR): the guest's FIN, passed on.</summary>
    public void ShutdownSend() => Libc.Shutdown(Fd, Libc.ShutWr);

    /// <summary>Closes the socket; with <paramref name="reset"/> the peer gets a RST (SO_LINGER 0) instead of a FIN.</summary>
    public void Close(bool reset)
    {
        var fd = Fd;
        if (fd < 0)
        {
            return;
        }

        Fd = -1;
        if (reset)
        {
            var linger = new Libc.Linger { OnOff = 1, Seconds = 0 };
            Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoLinger, &linger, sizeof(Libc.Linger));
        }

        if ((_socket ?? _view) is { } owner)
        {
            owner.Dispose();
        }
        else
        {
            Libc.Close(fd);
        }
    }
}
