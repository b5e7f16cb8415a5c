using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Qemu;

/// <summary>
/// A guest end on QEMU's stream framing (<c>-netdev stream</c> and <c>-netdev socket</c>,
/// TCP or unix): each frame is a 4-byte big-endian length then the Ethernet frame (protocol.md §8.1).
/// </summary>
/// <remarks>
/// How this works: NetWire listens (QEMU <c>server=off</c>, <c>socket,connect=</c>) or connects
/// with retries (QEMU <c>server=on</c>, <c>socket,listen=</c>). One guest at a time; when it
/// goes away NetWire accepts or reconnects again, and frames for the guest wait in the bounded
/// outbound queue meanwhile. Per connection a receive loop parses frames out of a 256 KiB
/// buffer and hands each on only while the receiver can take it (otherwise it stops reading,
/// and QEMU stops the guest's transmit queue); a send thread packs queued frames into one buffer
/// and writes them with one send(2), sleeping on the queue's direct signal while it is empty. A
/// source on a dedicated thread (the TAP's reader) may instead read a burst of frames straight
/// into that buffer and send it itself while nothing is queued (<see cref="BurstSink"/>,
/// QemuStreamEnd.Send.cs): no frame rented, no queue, no wake-up of the send thread.
/// Towards a device end (netwire bridge) the receive loop is a thread too, woken directly by the
/// other end's queue when it has room, so neither direction goes through the thread pool
/// (docs/performance.md, "netwire bridge"); towards the user-mode gateway it is an async loop. A
/// length of 0, under 14 or over 69,632 closes the connection (counted as BadLength); a
/// connection that ends mid-frame counts a Truncated drop. When a send fails because the guest
/// went away, the receive side still reads what the guest wrote before (<see cref="DrainLimit"/>).
/// </remarks>
public sealed partial class QemuStreamEnd : WireEnd
{
    private const int BufferLength = 256 * 1024;
    private const int HeaderLength = 4;

    /// <summary>How long the send thread sleeps in one wait (for an empty queue or a full socket) before it looks at its token.</summary>
    private const int PollTimeoutMs = 200;

    private static readonly TimeSpan s_maxRetryDelay = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan s_reconnectGrace = TimeSpan.FromSeconds(1);

    private readonly EndPoint _endPoint;
    private readonly bool _connect;
    private readonly ILogger _logger;

    /// <summary>The guest socket's send buffer, shared by the send thread and a burst source.</summary>
    private readonly SendBuffer _send;

    /// <summary>The listening socket (listen mode); written by RunAsync, disposed by ReleaseDeviceAsync.</summary>
    private Socket? _listener;

    /// <summary>Creates a stream end; <paramref name="connect"/> chooses connecting over listening.</summary>
    public QemuStreamEnd(string name, EndPoint endPoint, bool connect, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _endPoint = endPoint;
        _connect = connect;
        _logger = logger;
        _send = new SendBuffer(Counters, Outbound);
    }

    /// <summary>
    /// How long the receive side may go on reading once the send side lost the guest, for the
    /// frames the guest sent before it went (they are in the socket); then the connection ends.
    /// </summary>
    internal TimeSpan DrainLimit { get; init; } = TimeSpan.FromSeconds(5);

    /// <inheritdoc/>
    public override string Description => $"stream {Format(_endPoint)}{(_connect ? ", connecting" : ", listening")}";

    /// <summary>True while a guest connection is being served.</summary>
    public bool IsConnected => Volatile.Read(ref _connected) != 0;

    /// <summary>1 while a connection is served; written by ServeAsync.</summary>
    private int _connected;

    /// <summary>The bound address once listening (useful with port 0).</summary>
    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>Completes once the end listens (listen mode) or first tries to connect.</summary>
    public Task Ready => _ready.Task;

    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The QEMU option that attaches a guest NIC to this end.</summary>
    public string QemuNetdev(string id = "n0") => (_endPoint, _connect) switch
    {
        (UnixDomainSocketEndPoint u, false) => $"stream,id={id},server=off,addr.type=unix,addr.path={u}",
        (UnixDomainSocketEndPoint u, true) => $"stream,id={id},server=on,addr.type=unix,addr.path={u}",
        (IPEndPoint ip, false) => $"stream,id={id},server=off,addr.type=inet,addr.host={ip.Address},addr.port={((_listener?.LocalEndPoint as IPEndPoint)?.Port ?? ip.Port)}",
        (IPEndPoint ip, true) => $"stream,id={id},server=on,addr.type=inet,addr.host={ip.Address},addr.port={ip.Port}",
        _ => $"stream,id={id},...",
    };

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        if (_connect)
        {
            _ready.TrySetResult();
            await ConnectLoopAsync(receiver, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            _listener = Listen();
            DevicesLog.Listening(_logger, Name, Format(_listener.LocalEndPoint ?? _endPoint));
            _ready.TrySetResult();
            await AcceptLoopAsync(_listener, receiver, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        _listener?.Dispose();
        if (_listener is not null && _endPoint is UnixDomainSocketEndPoint unix)
        {
            TryDeleteSocketFile(unix.ToString());
        }

        return default;
    }

    private Socket Listen()
    {
        var socket = NewSocket();
        try
        {
            if (_endPoint is UnixDomainSocketEndPoint unix)
            {
                RemoveStaleSocket(unix.ToString());
            }
            else
            {
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            }

            socket.Bind(_endPoint);
            socket.Listen(4);
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new WireSetupException(ex.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => $"cannot listen on {Format(_endPoint)}: address already in use",
                SocketError.AccessDenied => $"cannot listen on {Format(_endPoint)}: permission denied",
                _ => $"cannot listen on {Format(_endPoint)}: {ex.Message}",
            }, ex);
        }
    }

    private static void RemoveStaleSocket(string path)
    {
        if (!File.Exists(path))
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(path));
            if (dir is not null && !Directory.Exists(dir))
            {
                throw new WireSetupException($"cannot listen on unix:{path}: directory {dir} does not exist");
            }

            return;
        }

        if (Interop.Libc.IsSocket(path) == false)
        {
            throw new WireSetupException($"cannot listen on unix:{path}: a file that is not a socket is in the way");
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException)
        {
            // Nobody answers: a socket file left by a process that died. Reuse the path.
            TryDeleteSocketFile(path);
            return;
        }

        throw new WireSetupException($"cannot listen on unix:{path}: busy, another process is listening there");
    }

    private static void TryDeleteSocketFile(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
        }
    }

    private async Task AcceptLoopAsync(Socket listener, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        Task<Socket>? pending = null;
        var serving = Task.CompletedTask;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var socket = await (pending ?? listener.AcceptAsync(cancellationToken).AsTask()).ConfigureAwait(false);
                serving = ServeAsync(socket, receiver, cancellationToken);
                pending = listener.AcceptAsync(cancellationToken).AsTask();
                while (await Task.WhenAny(serving, pending).ConfigureAwait(false) == pending)
                {
                    var extra = await pending.ConfigureAwait(false);

                    // A guest that reconnects may arrive before the old connection's end is read:
                    // give the old one a moment. Two live NICs on one wire end would interleave frames.
                    var grace = Task.Delay(s_reconnectGrace, cancellationToken);
                    if (await Task.WhenAny(serving, grace).ConfigureAwait(false) == serving)
                    {
                        pending = Task.FromResult(extra);
                        break;
                    }

                    DevicesLog.SecondGuestRefused(_logger, Name, Format(extra.RemoteEndPoint));
                    extra.Dispose();
                    pending = listener.AcceptAsync(cancellationToken).AsTask();
                }

                await serving.ConfigureAwait(false);
            }
        }
        finally
        {
            // A stop cancels the pending accept first, which ends this loop at once: the end must
            // not report itself stopped before the connection's send thread has counted the
            // frames it holds (sent, or dropped at shutdown), or the final counters miss them.
            await serving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task ConnectLoopAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(50);
        while (!cancellationToken.IsCancellationRequested)
        {
            var socket = NewSocket();
            try
            {
                await socket.ConnectAsync(_endPoint, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                DevicesLog.ConnectRetry(_logger, Name, Format(_endPoint), ex.Message);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, s_maxRetryDelay.Ticks));
                continue;
            }

            delay = TimeSpan.FromMilliseconds(50);
            await ServeAsync(socket, receiver, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task ServeAsync(Socket socket, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        Counters.Connected();
        Volatile.Write(ref _connected, 1);
        var peer = socket.RemoteEndPoint is IPEndPoint remote ? Format(remote) : Format(_endPoint);
        DevicesLog.GuestConnected(_logger, Name, peer);
        using var connection = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var token = connection.Token;
        // Towards a device end (netwire bridge) the receive side is a thread of its own too, so
        // the connection never touches the thread pool or the runtime's socket event thread; towards
        // the user-mode gateway it stays an async loop.
        var receiving = receiver.HasRoomSignal
            ? DeviceThread.Run($"stream-recv {Name}", () => ReceiveLoop(socket, receiver, token))
            : ReceiveLoopAsync(socket, receiver, token);
        var sending = DeviceThread.Run($"stream-send {Name}", () => SendLoop(socket, token));
        (EndReason Reason, string Detail) end;
        try
        {
            var first = await Task.WhenAny(receiving, sending).ConfigureAwait(false);
            if (first == sending && sending.IsCompletedSuccessfully && sending.Result.Reason == EndReason.ConnectionLost && !receiving.IsCompleted)
            {
                // The guest stopped taking frames (it closed, or shut its receive side), but what it
                // sent before is still in the socket: the receive side reads on to its end (EOF or an
                // error), for DrainLimit at most, so those frames are not lost with the connection.
                await Task.WhenAny(receiving, Task.Delay(DrainLimit, token)).ConfigureAwait(false);
            }

            end = first == receiving ? await receiving.ConfigureAwait(false) : await sending.ConfigureAwait(false);
        }
        finally
        {
            // Both loops end before the socket is closed: closing it under the send thread would
            // fail a send that cancellation should have stopped (frames counted as send_failed).
            await connection.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(Quiet(receiving), Quiet(sending)).ConfigureAwait(false);
            socket.Dispose();
            Volatile.Write(ref _connected, 0);
        }

        DevicesLog.GuestDisconnected(_logger, Name, end.Reason, end.Detail);
    }

    private static async Task Quiet(Task<(EndReason, string)> task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception ex) when (IoErrors.IsSocketEnd(ex))
        {
        }
    }

    /// <summary>Moves what is pending to the front when less than a whole frame's room is left after it.</summary>
    private static void MakeRoom(byte[] buffer, ref int start, ref int end)
    {
        if (start == end)
        {
            start = end = 0;
        }
        else if (buffer.Length - end < HeaderLength + FramePool.MaxFrameLength)
        {
            Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
            end -= start;
            start = 0;
        }
    }

    /// <summary>
    /// The length of the frame whose header is at <paramref name="start"/>: 0 while it has not all
    /// arrived, -1 when its length is out of bounds (the connection ends: <see cref="BadLength"/>).
    /// </summary>
    private static int NextFrameLength(byte[] buffer, int start, int end)
    {
        if (end - start < HeaderLength)
        {
            return 0;
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(start));
        if (length < FramePool.MinFrameLength || length > FramePool.MaxFrameLength)
        {
            return -1;
        }

        return end - start < HeaderLength + (int)length ? 0 : (int)length;
    }

    /// <summary>Counts and logs a frame length out of bounds; the connection ends.</summary>
    private (EndReason Reason, string Detail) BadLength(byte[] buffer, int start)
    {
        var length = BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(start));
        Counters.Dropped(DropReason.BadLength);
        DevicesLog.BadFrameLength(_logger, Name, length, FramePool.MinFrameLength, FramePool.MaxFrameLength);
        return (EndReason.ProtocolError, $"bad frame length {length}");
    }

    /// <summary>The guest closed its side with <paramref name="pending"/> bytes of a frame unread (a Truncated drop when any).</summary>
    private (EndReason Reason, string Detail) EndOfStream(int pending)
    {
        if (pending > 0)
        {
            Counters.Dropped(DropReason.Truncated);
            DevicesLog.TruncatedFrame(_logger, Name, pending);
            return (EndReason.PeerClosed, "closed mid-frame");
        }

        return (EndReason.PeerClosed, "closed by the guest");
    }

    internal async Task<(EndReason Reason, string Detail)> ReceiveLoopAsync(Socket socket, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferLength);
        try
        {
            var start = 0;
            var end = 0;
            while (true)
            {
                MakeRoom(buffer, ref start, ref end);

                int n;
                try
                {
                    n = await socket.ReceiveAsync(buffer.AsMemory(end), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException ex)
                {
                    return (EndReason.ConnectionLost, ex.SocketErrorCode.ToString());
                }

                if (n == 0)
                {
                    return EndOfStream(end - start);
                }

                end += n;
                int length;
                while ((length = NextFrameLength(buffer, start, end)) != 0)
                {
                    if (length < 0)
                    {
                        return BadLength(buffer, start);
                    }

                    if (!receiver.CanRecvPacket)
                    {
                        // Backpressure: stop reading the socket until the other end has room.
                        await receiver.WaitCanRecvPacketAsync(cancellationToken).ConfigureAwait(false);
                    }

                    var frame = Pool.Rent(buffer.AsSpan(start + HeaderLength, length));
                    Counters.Received(length);
                    receiver.RecvPacket(frame);
                    start += HeaderLength + length;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The receive side of one connection on a thread of its own, for a receiver that wakes its
    /// producer directly (<see cref="IPacketReceiver.HasRoomSignal"/>): recv(2) into the 256 KiB
    /// buffer until the socket is empty, then poll(2) on the socket and an eventfd that the
    /// connection's token writes. The frames are parsed and handed on as in
    /// <see cref="ReceiveLoopAsync"/>; while the receiver is full the thread sleeps on the
    /// receiver's room signal and the socket is not read (QEMU stops the guest's transmit queue).
    /// The socket is never registered with the runtime's epoll thread: its writable edges (one
    /// per read of the guest's side, towards the guest) would wake that thread for nothing.
    /// </summary>
    private unsafe (EndReason Reason, string Detail) ReceiveLoop(Socket socket, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(BufferLength, pinned: true);
        var room = EventFdSignal.Create();
        var stopFd = Libc.EventFd(0, Libc.EventFdFlags);
        var handle = socket.SafeHandle;
        var added = false;
        handle.DangerousAddRef(ref added);
        var wakeRoom = cancellationToken.UnsafeRegister(static state => ((ThreadSignal)state!).Set(), room);
        var wakePoll = stopFd >= 0 ? cancellationToken.UnsafeRegister(static state => SignalEventFd((int)state!), stopFd) : default;
        try
        {
            var fd = (int)handle.DangerousGetHandle();
            var pollFds = stackalloc Libc.PollFd[2];
            pollFds[0] = new Libc.PollFd { Fd = fd, Events = Libc.PollIn };
            pollFds[1] = new Libc.PollFd { Fd = stopFd, Events = Libc.PollIn };
            var start = 0;
            var end = 0;
            fixed (byte* data = buffer)
            {
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    MakeRoom(buffer, ref start, ref end);

                    var n = Libc.Recv(fd, data + end, buffer.Length - end, Libc.MsgDontWait);
                    if (n < 0)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno == Libc.EAgain)
                        {
                            Libc.Poll(pollFds, stopFd >= 0 ? 2u : 1u, PollTimeoutMs);
                            continue;
                        }

                        if (errno == Libc.EIntr)
                        {
                            continue;
                        }

                        return (EndReason.ConnectionLost, Libc.Describe(errno));
                    }

                    if (n == 0)
                    {
                        return EndOfStream(end - start);
                    }

                    end += (int)n;
                    int length;
                    while ((length = NextFrameLength(buffer, start, end)) != 0)
                    {
                        if (length < 0)
                        {
                            return BadLength(buffer, start);
                        }

                        while (!receiver.CanRecvPacket)
                        {
                            // Backpressure: stop reading the socket until the other end has room.
                            cancellationToken.ThrowIfCancellationRequested();
                            if (receiver.TryArmRoomSignal(room))
                            {
                                room.Wait(PollTimeoutMs);
                            }
                            else if (!receiver.CanRecvPacket)
                            {
                                DeviceThread.Wait(receiver.WaitCanRecvPacketAsync(cancellationToken));
                            }
                        }

                        var frame = Pool.Rent(buffer.AsSpan(start + HeaderLength, length));
                        Counters.Received(length);
                        receiver.RecvPacket(frame);
                        start += HeaderLength + length;
                    }
                }
            }
        }
        finally
        {
            // Disposing a registration waits for its callback if it is running: the eventfd is
            // closed only once nobody can write to it.
            wakePoll.Dispose();
            wakeRoom.Dispose();
            EventFdSignal.Release(room);
            if (stopFd >= 0)
            {
                Libc.Close(stopFd);
            }

            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private static unsafe void SignalEventFd(int fd)
    {
        ulong one = 1;
        _ = Libc.Write(fd, (byte*)&one, sizeof(ulong));
    }

    private Socket NewSocket()
    {
        if (_endPoint is UnixDomainSocketEndPoint)
        {
            return new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }

        var socket = new Socket(_endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        return socket;
    }

    internal static string Format(EndPoint? endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint u => $"unix:{u}",
        IPEndPoint ip => $"tcp:{ip}",
        null => "?",
        _ => endPoint.ToString() ?? "?",
    };
}
