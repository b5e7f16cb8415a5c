using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using NetWire.Core.Net;
using NetWire.Core.State;

namespace NetWire.Stack.Tcp;

/// <summary>
/// Moves a connected host TCP socket between processes with Linux's TCP_REPAIR, as CRIU and
/// passt do (docs/migration.md, "Gateway flows"): <see cref="Dump"/> puts a socket in repair mode
/// and reads its sequence numbers, both queues, options and window; <see cref="Restore"/> makes a
/// socket with the same addresses in repair mode and writes all of that back.
/// </summary>
/// <remarks>
/// How this works. In repair mode a socket sends nothing of its own when it is closed (no FIN, no
/// RST) and its queues can be read and written directly: with TCP_REPAIR_QUEUE set to the send
/// queue, recv(MSG_PEEK) copies the bytes the peer has not acknowledged and send() appends bytes
/// that count as already sent; with the receive queue, send() appends bytes the application has
/// not read yet. TCP_QUEUE_SEQ reads or sets the sequence number at a queue's end (write_seq,
/// rcv_nxt). A repair-mode connect() goes straight to ESTABLISHED without a SYN.
/// A socket in repair mode still takes segments and acknowledges them (checked on 6.18), so the
/// dump is only stable once nothing reaches the socket: the caller holds a network lock
/// (<see cref="NetworkLock"/>) first.
/// Closing states: after our shutdown the kernel's write_seq counts the FIN, so the data ends one
/// before it and the restored socket sends the FIN again when the connection shuts it down; after
/// the peer's FIN (CLOSE_WAIT) rcv_nxt counts it, so the restored socket ends one before it and
/// <see cref="TcpRepairState.PeerFin"/> tells the connection that the host stream ends after the
/// queued bytes. The unsent tail of the send queue is written after repair mode ends, so it goes
/// out at once instead of waiting for a retransmission timer.
/// Needs CAP_NET_ADMIN; without it <see cref="Dump"/> and <see cref="Restore"/> fail with
/// <see cref="TcpRepairFailure.NotPermitted"/>.
/// </remarks>
internal static partial class TcpRepair
{
    /// <summary>Largest queue taken from or put into one socket (a hostile stream asks for more).</summary>
    public const int MaxQueueBytes = 16 << 20;

    private const int SolTcp = 6;
    private const int SolSocket = 1;
    private const int TcpMaxSeg = 2;
    private const int TcpInfo = 11;
    private const int TcpRepairOption = 19;
    private const int TcpRepairQueue = 20;
    private const int TcpQueueSeq = 21;
    private const int TcpRepairOptions = 22;
    private const int TcpTimestamp = 24;
    private const int TcpRepairWindow = 29;
    private const int TcpRecvQueue = 1;
    private const int TcpSendQueue = 2;
    private const int SoSndBuf = 7;
    private const int SoRcvBuf = 8;
    private const int SoReuseAddr = 2;
    private const int SoSndBufForce = 32;
    private const int SoRcvBufForce = 33;
    private const uint SiocInq = 0x541B;
    private const uint SiocOutq = 0x5411;
    private const uint SiocOutqNsd = 0x894B;
    private const short PollErr = 0x8;
    private const int MsgPeek = 0x2;
    private const int MsgDontWait = 0x40;
    private const int Chunk = 64 * 1024;

    // tcp_info.tcpi_options bits and TCP option kinds (RFC 9293 3.2, RFC 7323, RFC 2018).
    private const byte OptTimestamps = 1;
    private const byte OptSack = 2;
    private const byte OptWindowScale = 4;
    private const int KindMss = 2;
    private const int KindWindow = 3;
    private const int KindSackPermitted = 4;
    private const int KindTimestamp = 8;

    /// <summary>
    /// Puts <paramref name="socket"/> in repair mode and reads its state. The socket stays in repair
    /// mode (<see cref="Resume"/> ends it; a close in repair mode is silent).
    /// </summary>
    /// <param name="socket">A connected TCP socket nothing reaches any more (network lock held).</param>
    /// <param name="shutdownSent">True when the connection has called shutdown(SHUT_WR) on it.</param>
    /// <exception cref="TcpRepairException">Not permitted, or a state that cannot be moved.</exception>
    public static TcpRepairState Dump(Socket socket, bool shutdownSent)
    {
        SetInt(socket, SolTcp, TcpRepairOption, 1, TcpRepairFailure.NotPermitted);
        Span<byte> info = stackalloc byte[8];
        GetOption(socket, SolTcp, TcpInfo, info);
        var state = (TcpKernelState)info[0];
        if (state is not (TcpKernelState.Established or TcpKernelState.CloseWait or TcpKernelState.FinWait1 or TcpKernelState.FinWait2
            or TcpKernelState.LastAck or TcpKernelState.Closing or TcpKernelState.Close))
        {
            throw new TcpRepairException(TcpRepairFailure.HostState, $"host socket in state {state}");
        }

        // CLOSE: after our FIN, a socket whose peer's FIN came (TIME-WAIT, which the kernel keeps
        // apart from the socket) or whose peer's RST came; only the first has a stream to carry.
        var closed = state == TcpKernelState.Close;
        if (closed && (!shutdownSent || HasPendingError(socket)))
        {
            throw new TcpRepairException(TcpRepairFailure.HostState, shutdownSent ? "host socket reset by its peer" : "host socket closed without our FIN");
        }

        var options = info[5];
        var mss = GetInt(socket, SolTcp, TcpMaxSeg);
        var timestamp = (options & OptTimestamps) != 0 ? (uint)GetInt(socket, SolTcp, TcpTimestamp) : 0;
        Span<byte> window = stackalloc byte[TcpRepairWindow20];
        GetOption(socket, SolTcp, TcpRepairWindow, window);
        // Our FIN takes the sequence number after the data and counts in the send queue's length
        // until it is acknowledged; the peer's FIN the one after its data (SIOCINQ leaves it out).
        var finSent = shutdownSent && state is TcpKernelState.FinWait1 or TcpKernelState.FinWait2 or TcpKernelState.LastAck or TcpKernelState.Closing or TcpKernelState.Close;
        var finUnacked = finSent && state is TcpKernelState.FinWait1 or TcpKernelState.LastAck or TcpKernelState.Closing;
        var peerFin = state is TcpKernelState.CloseWait or TcpKernelState.LastAck or TcpKernelState.Closing or TcpKernelState.Close;
        var outq = Ioctl(socket, SiocOutq) - (finUnacked ? 1 : 0);
        var notSent = Ioctl(socket, SiocOutqNsd);
        var inq = Ioctl(socket, SiocInq);
        if (outq > MaxQueueBytes || inq > MaxQueueBytes)
        {
            throw new TcpRepairException(TcpRepairFailure.TooLarge, $"host socket queues of {outq} and {inq} bytes");
        }

        SetInt(socket, SolTcp, TcpRepairQueue, TcpSendQueue, TcpRepairFailure.Failed);
        var writeSeq = (uint)GetInt(socket, SolTcp, TcpQueueSeq);
        var sendQueue = Peek(socket, outq);
        SetInt(socket, SolTcp, TcpRepairQueue, TcpRecvQueue, TcpRepairFailure.Failed);
        var rcvNxt = (uint)GetInt(socket, SolTcp, TcpQueueSeq);
        var recvQueue = Peek(socket, inq);

        var dataEnd = writeSeq - (finSent ? 1u : 0u);
        var received = rcvNxt - (peerFin ? 1u : 0u);
        // A closed socket has no peer address; its dump is never restored (only its receive queue moves).
        var (local, remote) = closed ? (new IPEndPoint(IPAddress.Any, 0), new IPEndPoint(IPAddress.Any, 0)) : Addresses(socket);
        return new TcpRepairState
        {
            Local = local,
            Remote = remote,
            SendSeq = dataEnd - (uint)sendQueue.Length,
            SendQueue = sendQueue,
            Unsent = Math.Clamp(notSent - (finSent ? 1 : 0), 0, sendQueue.Length),
            RecvSeq = received - (uint)recvQueue.Length,
            RecvQueue = recvQueue,
            PeerFin = peerFin,
            Closed = closed,
            Mss = (ushort)Math.Clamp(mss, 64, 65535),
            Options = (byte)(options & (OptTimestamps | OptSack | OptWindowScale)),
            SendScale = (byte)(info[6] & 0x0F),
            ReceiveScale = (byte)(info[6] >> 4),
            Timestamp = timestamp,
            SndWl1 = BinaryPrimitives.ReadUInt32LittleEndian(window),
            SndWnd = BinaryPrimitives.ReadUInt32LittleEndian(window[4..]),
            MaxWindow = BinaryPrimitives.ReadUInt32LittleEndian(window[8..]),
            RcvWnd = BinaryPrimitives.ReadUInt32LittleEndian(window[12..]),
            RcvWup = BinaryPrimitives.ReadUInt32LittleEndian(window[16..]),
            SendBuffer = GetInt(socket, SolSocket, SoSndBuf),
            ReceiveBuffer = GetInt(socket, SolSocket, SoRcvBuf),
        };
    }

    /// <summary>The kernel's TCP state of <paramref name="socket"/> (TCP_INFO), or null when it cannot be read; for descriptions and tests.</summary>
    public static TcpKernelState? KernelState(Socket socket)
    {
        Span<byte> info = stackalloc byte[8];
        try
        {
            socket.GetRawSocketOption(SolTcp, TcpInfo, info);
            return (TcpKernelState)info[0];
        }
        catch (Exception ex) when (IoErrors.IsSocketEnd(ex) || ex is SocketException)
        {
            return null;
        }
    }

    /// <summary>Leaves repair mode on a dumped socket that stays (the migration failed).</summary>
    public static void Resume(Socket socket)
    {
        try
        {
            socket.SetRawSocketOption(SolTcp, TcpRepairOption, Int(0));
        }
        catch (Exception ex) when (IoErrors.IsSocketEnd(ex))
        {
            // The socket is gone; its connection finds out on its next read or write.
        }
    }

    /// <summary>
    /// Makes a socket from <paramref name="state"/>, still in repair mode (nothing is sent until
    /// <see cref="Activate"/>). Needs the 4-tuple free on this host: the source has let go of it.
    /// </summary>
    /// <exception cref="TcpRepairException">Not permitted, the local address is not on this host, the tuple is busy, or the kernel refused a value.</exception>
    public static Socket Restore(TcpRepairState state)
    {
        var socket = new Socket(state.Local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            SetInt(socket, SolTcp, TcpRepairOption, 1, TcpRepairFailure.NotPermitted);

            // Room for the queues written below (the kernel doubles what it is given).
            SetInt(socket, SolSocket, SoSndBufForce, Math.Max(state.SendBuffer, state.SendQueue.Length * 2) / 2 + Chunk, TcpRepairFailure.Failed);
            SetInt(socket, SolSocket, SoRcvBufForce, Math.Max(state.ReceiveBuffer, state.RecvQueue.Length * 2) / 2 + Chunk, TcpRepairFailure.Failed);
            SetInt(socket, SolTcp, TcpRepairQueue, TcpSendQueue, TcpRepairFailure.Failed);
            SetInt(socket, SolTcp, TcpQueueSeq, (int)state.SendSeq, TcpRepairFailure.Failed);
            SetInt(socket, SolTcp, TcpRepairQueue, TcpRecvQueue, TcpRepairFailure.Failed);
            SetInt(socket, SolTcp, TcpQueueSeq, (int)state.RecvSeq, TcpRepairFailure.Failed);
            BindInRepair(socket, state.Local);

            try
            {
                socket.Connect(state.Remote);
            }
            catch (SocketException ex)
            {
                throw new TcpRepairException(TcpRepairFailure.AddressUnavailable, $"cannot take {state.Local} -> {state.Remote}: {ex.Message}", ex);
            }

            SetRepairOptions(socket, state);
            if ((state.Options & OptTimestamps) != 0)
            {
                SetInt(socket, SolTcp, TcpTimestamp, (int)state.Timestamp, TcpRepairFailure.Failed);
            }

            if (state.RecvQueue.Length > 0)
            {
                SetInt(socket, SolTcp, TcpRepairQueue, TcpRecvQueue, TcpRepairFailure.Failed);
                Fill(socket, state.RecvQueue);
            }

            var sent = state.SendQueue.Length - state.Unsent;
            if (sent > 0)
            {
                SetInt(socket, SolTcp, TcpRepairQueue, TcpSendQueue, TcpRepairFailure.Failed);
                Fill(socket, state.SendQueue.AsSpan(0, sent));
            }

            SetWindow(socket, state);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Ends repair mode on a restored socket (the kernel sends a window probe, which makes the peer
    /// answer with its current state) and returns the unsent tail of the send queue, which the
    /// connection writes like any other bytes.
    /// </summary>
    public static ReadOnlyMemory<byte> Activate(Socket socket, TcpRepairState state)
    {
        SetInt(socket, SolTcp, TcpRepairOption, 0, TcpRepairFailure.Failed);

        // Leaving repair mode clears the socket's address reuse; a host forward's listener on the
        // same local port (opened on this gateway after the handover) binds with SO_REUSEADDR and
        // would meet EADDRINUSE, as it would not beside the sockets it accepted itself.
        SetInt(socket, SolSocket, SoReuseAddr, 1, TcpRepairFailure.Failed);
        return state.SendQueue.AsMemory(state.SendQueue.Length - state.Unsent);
    }

    /// <summary>True when this process may use TCP_REPAIR (CAP_NET_ADMIN), checked on a fresh socket.</summary>
    public static bool IsPermitted()
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            probe.SetRawSocketOption(SolTcp, TcpRepairOption, Int(1));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>True when <paramref name="address"/> is an address of this host (a socket can bind it).</summary>
    public static bool IsLocalAddress(IPAddress address)
    {
        try
        {
            using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(address, 0));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private const int TcpRepairWindow20 = 20;

    private static void SetRepairOptions(Socket socket, TcpRepairState state)
    {
        // struct tcp_repair_opt { u32 opt_code; u32 opt_val; }, one per option the connection had.
        Span<byte> options = stackalloc byte[32];
        var count = 0;
        void Add(Span<byte> into, int code, uint value)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(into[(count * 8)..], (uint)code);
            BinaryPrimitives.WriteUInt32LittleEndian(into[((count * 8) + 4)..], value);
            count++;
        }

        Add(options, KindMss, state.Mss);
        if ((state.Options & OptWindowScale) != 0)
        {
            Add(options, KindWindow, state.SendScale | ((uint)state.ReceiveScale << 16));
        }

        if ((state.Options & OptSack) != 0)
        {
            Add(options, KindSackPermitted, 0);
        }

        if ((state.Options & OptTimestamps) != 0)
        {
            Add(options, KindTimestamp, 0);
        }

        try
        {
            socket.SetRawSocketOption(SolTcp, TcpRepairOptions, options[..(count * 8)]);
        }
        catch (SocketException ex)
        {
            throw new TcpRepairException(TcpRepairFailure.Failed, $"TCP_REPAIR_OPTIONS refused: {ex.Message}", ex);
        }
    }

    private static void SetWindow(Socket socket, TcpRepairState state)
    {
        // The kernel refuses a window whose rcv_wup is past rcv_nxt (after a peer FIN the restored
        // rcv_nxt is one short of the dumped one).
        var rcvNxt = state.RecvSeq + (uint)state.RecvQueue.Length;
        Span<byte> window = stackalloc byte[TcpRepairWindow20];
        BinaryPrimitives.WriteUInt32LittleEndian(window, state.SndWl1);
        BinaryPrimitives.WriteUInt32LittleEndian(window[4..], state.SndWnd);
        BinaryPrimitives.WriteUInt32LittleEndian(window[8..], state.MaxWindow);
        BinaryPrimitives.WriteUInt32LittleEndian(window[12..], state.RcvWnd);
        BinaryPrimitives.WriteUInt32LittleEndian(window[16..], (int)(state.RcvWup - rcvNxt) > 0 ? rcvNxt : state.RcvWup);
        try
        {
            socket.SetRawSocketOption(SolTcp, TcpRepairWindow, window);
        }
        catch (SocketException ex)
        {
            throw new TcpRepairException(TcpRepairFailure.Failed, $"TCP_REPAIR_WINDOW refused: {ex.Message}", ex);
        }
    }

    /// <summary>A socket error waits to be read (poll's POLLERR, which leaves it for the reader, as SO_ERROR would not).</summary>
    private static unsafe bool HasPendingError(Socket socket)
    {
        // struct pollfd { int fd; short events; short revents; }; POLLERR is reported unasked.
        Span<short> poll = stackalloc short[4];
        MemoryMarshal.Cast<short, int>(poll)[0] = (int)socket.Handle;
        fixed (short* at = poll)
        {
            if (Poll(at, 1, 0) < 0)
            {
                throw new TcpRepairException(TcpRepairFailure.Failed, $"poll failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }

        return (poll[3] & PollErr) != 0;
    }

    private static unsafe byte[] Peek(Socket socket, int length)
    {
        if (length == 0)
        {
            return [];
        }

        var buffer = new byte[length];
        nint read;
        fixed (byte* at = buffer)
        {
            read = Recv(socket.SafeHandle, at, (nuint)length, MsgPeek | MsgDontWait);
        }

        if (read != length)
        {
            var errno = read < 0 ? Marshal.GetLastPInvokeError() : 0;
            throw new TcpRepairException(TcpRepairFailure.Failed, $"peeked {read} of {length} queued bytes (errno {errno})");
        }

        return buffer;
    }

    /// <summary>Writes <paramref name="data"/> into the queue selected in repair mode, in chunks the kernel takes.</summary>
    private static unsafe void Fill(Socket socket, ReadOnlySpan<byte> data)
    {
        var chunk = Chunk;
        fixed (byte* start = data)
        {
            var at = 0;
            while (at < data.Length)
            {
                var length = Math.Min(chunk, data.Length - at);
                var sent = Send(socket.SafeHandle, start + at, (nuint)length, MsgDontWait);
                if (sent > 0)
                {
                    at += (int)sent;
                    continue;
                }

                // ENOMEM: the kernel could not take a buffer that large at once (CRIU halves too).
                var errno = Marshal.GetLastPInvokeError();
                if (sent < 0 && errno == 12 && chunk > 4096)
                {
                    chunk /= 2;
                    continue;
                }

                throw new TcpRepairException(TcpRepairFailure.Failed, $"queue restore stopped at {at} of {data.Length} bytes (errno {errno})");
            }
        }
    }

    private static byte[] Int(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }

    private static void SetInt(Socket socket, int level, int name, int value, TcpRepairFailure failure)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        try
        {
            socket.SetRawSocketOption(level, name, bytes);
        }
        catch (SocketException ex)
        {
            var why = failure == TcpRepairFailure.NotPermitted ? "TCP_REPAIR is not permitted (needs CAP_NET_ADMIN)" : $"socket option {level}/{name} = {value} refused";
            throw new TcpRepairException(failure, $"{why}: {ex.Message}", ex);
        }
    }

    private static int GetInt(Socket socket, int level, int name)
    {
        Span<byte> bytes = stackalloc byte[4];
        GetOption(socket, level, name, bytes);
        return BinaryPrimitives.ReadInt32LittleEndian(bytes);
    }

    private static void GetOption(Socket socket, int level, int name, Span<byte> value)
    {
        try
        {
            socket.GetRawSocketOption(level, name, value);
        }
        catch (SocketException ex)
        {
            throw new TcpRepairException(TcpRepairFailure.Failed, $"socket option {level}/{name} unreadable: {ex.Message}", ex);
        }
    }

    private static unsafe int Ioctl(Socket socket, uint request)
    {
        int value;
        if (IoctlInt(socket.SafeHandle, request, &value) < 0)
        {
            throw new TcpRepairException(TcpRepairFailure.Failed, $"ioctl 0x{request:X} failed (errno {Marshal.GetLastPInvokeError()})");
        }

        return value;
    }

    /// <summary>
    /// The socket's local and peer addresses from the kernel (getsockname, getpeername): .NET's
    /// LocalEndPoint and RemoteEndPoint are only known for sockets it connected or accepted itself.
    /// </summary>
    /// <exception cref="TcpRepairException">Not a connected IP socket.</exception>
    public static unsafe (IPEndPoint Local, IPEndPoint Remote) Addresses(Socket socket)
    {
        Span<byte> address = stackalloc byte[28];
        fixed (byte* at = address)
        {
            var length = 28;
            if (GetSockName(socket.SafeHandle, at, &length) != 0)
            {
                throw new TcpRepairException(TcpRepairFailure.HostState, $"getsockname failed (errno {Marshal.GetLastPInvokeError()})");
            }

            var local = Parse(address);
            length = 28;
            if (GetPeerName(socket.SafeHandle, at, &length) != 0)
            {
                throw new TcpRepairException(TcpRepairFailure.HostState, $"getpeername failed (errno {Marshal.GetLastPInvokeError()})");
            }

            return (local, Parse(address));
        }
    }

    /// <summary>
    /// bind(2) itself rather than <see cref="Socket.Bind"/>, which sets SO_REUSEADDR first: that
    /// option replaces the forced reuse repair mode gives a socket (the kernel then lets it take
    /// an address:port other sockets hold) by the ordinary kind, and the bind fails whenever the
    /// kernel has handed the same port to another connection as its ephemeral port.
    /// </summary>
    private static unsafe void BindInRepair(Socket socket, IPEndPoint local)
    {
        var ipv6 = local.AddressFamily == AddressFamily.InterNetworkV6;
        var address = stackalloc byte[28];
        var span = new Span<byte>(address, 28);
        span.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)(ipv6 ? 10 : 2));
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)local.Port);
        local.Address.TryWriteBytes(span.Slice(ipv6 ? 8 : 4, ipv6 ? 16 : 4), out _);
        if (BindRaw(socket.SafeHandle, address, ipv6 ? 28 : 16) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new TcpRepairException(TcpRepairFailure.AddressUnavailable, $"cannot bind {local}: {Interop.Libc.Describe(errno)}");
        }
    }

    /// <summary>struct sockaddr_in / sockaddr_in6: family (host order), port (network order), then the address.</summary>
    private static IPEndPoint Parse(ReadOnlySpan<byte> address)
    {
        var family = BinaryPrimitives.ReadUInt16LittleEndian(address);
        var port = BinaryPrimitives.ReadUInt16BigEndian(address[2..]);
        return family switch
        {
            2 => new IPEndPoint(new IPAddress(address.Slice(4, 4)), port),
            10 => new IPEndPoint(new IPAddress(address.Slice(8, 16)), port),
            _ => throw new TcpRepairException(TcpRepairFailure.HostState, $"host socket of address family {family}"),
        };
    }

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static unsafe partial int BindRaw(SafeHandle socket, byte* address, int length);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    private static unsafe partial int GetSockName(SafeHandle socket, byte* address, int* length);

    [LibraryImport("libc", EntryPoint = "getpeername", SetLastError = true)]
    private static unsafe partial int GetPeerName(SafeHandle socket, byte* address, int* length);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static unsafe partial int Poll(short* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static unsafe partial nint Recv(SafeHandle socket, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static unsafe partial nint Send(SafeHandle socket, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int IoctlInt(SafeHandle socket, nuint request, int* value);
}

/// <summary>Linux's TCP states (include/net/tcp_states.h), as TCP_INFO reports them.</summary>
internal enum TcpKernelState : byte
{
    Established = 1,
    SynSent = 2,
    SynReceived = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
}

/// <summary>Why a host socket could not be dumped or restored.</summary>
internal enum TcpRepairFailure
{
    /// <summary>TCP_REPAIR refused: the process lacks CAP_NET_ADMIN.</summary>
    NotPermitted,

    /// <summary>The socket is in a state that is not moved (handshake, or closing both ways).</summary>
    HostState,

    /// <summary>The local address is not on this host, or the 4-tuple is in use.</summary>
    AddressUnavailable,

    /// <summary>The queues are over <see cref="TcpRepair.MaxQueueBytes"/>.</summary>
    TooLarge,

    /// <summary>The kernel refused a value.</summary>
    Failed,
}

/// <summary>A socket that cannot be dumped or restored; <see cref="Failure"/> says why.</summary>
internal sealed class TcpRepairException : Exception
{
    public TcpRepairException()
    {
    }

    public TcpRepairException(string message)
        : base(message)
    {
    }

    public TcpRepairException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public TcpRepairException(TcpRepairFailure failure, string message, Exception? innerException = null)
        : base(message, innerException) => Failure = failure;

    public TcpRepairFailure Failure { get; }
}

/// <summary>
/// A host TCP socket as <see cref="TcpRepair.Dump"/> read it. Sequence numbers are those of the
/// first byte of each queue; the queues hold data only (FINs are <see cref="PeerFin"/> and the
/// connection's own shutdown state).
/// </summary>
internal sealed record TcpRepairState
{
    /// <summary>Most bytes a state section accepts for one queue.</summary>
    public const int MaxQueue = TcpRepair.MaxQueueBytes;

    public required IPEndPoint Local { get; init; }

    public required IPEndPoint Remote { get; init; }

    /// <summary>snd_una: the sequence number of the first byte of <see cref="SendQueue"/>.</summary>
    public uint SendSeq { get; init; }

    /// <summary>Bytes written and not yet acknowledged by the peer; the last <see cref="Unsent"/> never went out.</summary>
    public byte[] SendQueue { get; init; } = [];

    public int Unsent { get; init; }

    /// <summary>The sequence number of the first byte of <see cref="RecvQueue"/>.</summary>
    public uint RecvSeq { get; init; }

    /// <summary>Bytes received and not yet read.</summary>
    public byte[] RecvQueue { get; init; } = [];

    /// <summary>The peer's FIN came after <see cref="RecvQueue"/> (CLOSE_WAIT, LAST_ACK, CLOSING, CLOSE).</summary>
    public bool PeerFin { get; init; }

    /// <summary>
    /// Dump only, not carried: the socket was closed both ways (our FIN acknowledged, the peer's
    /// received): no socket is restored, <see cref="RecvQueue"/> is what is left of the host's stream.
    /// </summary>
    public bool Closed { get; init; }

    public ushort Mss { get; init; }

    /// <summary>tcpi_options: 1 timestamps, 2 SACK, 4 window scaling.</summary>
    public byte Options { get; init; }

    public byte SendScale { get; init; }

    public byte ReceiveScale { get; init; }

    public uint Timestamp { get; init; }

    public uint SndWl1 { get; init; }

    public uint SndWnd { get; init; }

    public uint MaxWindow { get; init; }

    public uint RcvWnd { get; init; }

    public uint RcvWup { get; init; }

    public int SendBuffer { get; init; }

    public int ReceiveBuffer { get; init; }

    /// <summary>Writes the state (a gateway.tcp flow's host part).</summary>
    public void Write(StateSectionWriter writer)
    {
        Migration.FlowCodec.WriteEndPoint(writer, Local);
        Migration.FlowCodec.WriteEndPoint(writer, Remote);
        writer.WriteUInt32(SendSeq);
        writer.WriteBytes(SendQueue);
        writer.WriteUInt32((uint)Unsent);
        writer.WriteUInt32(RecvSeq);
        writer.WriteBytes(RecvQueue);
        writer.WriteBool(PeerFin);
        writer.WriteUInt16(Mss);
        writer.WriteByte(Options);
        writer.WriteByte(SendScale);
        writer.WriteByte(ReceiveScale);
        writer.WriteUInt32(Timestamp);
        writer.WriteUInt32(SndWl1);
        writer.WriteUInt32(SndWnd);
        writer.WriteUInt32(MaxWindow);
        writer.WriteUInt32(RcvWnd);
        writer.WriteUInt32(RcvWup);
        writer.WriteUInt32((uint)SendBuffer);
        writer.WriteUInt32((uint)ReceiveBuffer);
    }

    /// <summary>Reads and checks what <see cref="Write"/> wrote; throws <see cref="StateFormatException"/> on anything impossible.</summary>
    public static TcpRepairState Read(StateSectionReader reader)
    {
        var local = Migration.FlowCodec.ReadEndPoint(reader);
        var remote = Migration.FlowCodec.ReadEndPoint(reader);
        if (local.AddressFamily != remote.AddressFamily || local.Port == 0 || remote.Port == 0)
        {
            throw reader.Error($"host socket {local} -> {remote} is not one connection");
        }

        var sendSeq = reader.ReadUInt32();
        var sendQueue = reader.ReadBytes(MaxQueue);
        var unsent = reader.ReadUInt32();
        if (unsent > (uint)sendQueue.Length)
        {
            throw reader.Error($"{unsent} unsent bytes of a {sendQueue.Length}-byte send queue");
        }

        var state = new TcpRepairState
        {
            Local = local,
            Remote = remote,
            SendSeq = sendSeq,
            SendQueue = sendQueue,
            Unsent = (int)unsent,
            RecvSeq = reader.ReadUInt32(),
            RecvQueue = reader.ReadBytes(MaxQueue),
            PeerFin = reader.ReadBool(),
            Mss = reader.ReadUInt16(),
            Options = reader.ReadByte(),
            SendScale = reader.ReadByte(),
            ReceiveScale = reader.ReadByte(),
            Timestamp = reader.ReadUInt32(),
            SndWl1 = reader.ReadUInt32(),
            SndWnd = reader.ReadUInt32(),
            MaxWindow = reader.ReadUInt32(),
            RcvWnd = reader.ReadUInt32(),
            RcvWup = reader.ReadUInt32(),
            SendBuffer = (int)Math.Min(reader.ReadUInt32(), int.MaxValue),
            ReceiveBuffer = (int)Math.Min(reader.ReadUInt32(), int.MaxValue),
        };

        // RFC 7323 2.3: a shift is at most 14; windows past 2^30 cannot be expressed.
        if (state.Mss < 64 || (state.Options & ~7) != 0 || state.SendScale > 14 || state.ReceiveScale > 14
            || state.SndWnd > 1u << 30 || state.MaxWindow > 1u << 30 || state.RcvWnd > 1u << 30
            || state.SendBuffer > 1 << 30 || state.ReceiveBuffer > 1 << 30)
        {
            throw reader.Error($"host socket {local} -> {remote}: impossible options or windows (mss {state.Mss}, scale {state.SendScale}/{state.ReceiveScale}, window {state.SndWnd}/{state.RcvWnd})");
        }

        return state;
    }
}
