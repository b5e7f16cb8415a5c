using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Tap;

/// <summary>
/// A host end on a Linux TAP device, driven through its file descriptor.
/// </summary>
/// <remarks>
/// <para>
/// How this works: the fd is non-blocking. A dedicated reader thread reads one frame per
/// read(2) into a scratch buffer and copies it into a pooled frame of the exact size; it hands
/// frames on in bursts of up to <see cref="ReadBurstFrames"/> (or as soon as the kernel's queue is
/// empty). When the receiver is full it stops reading, so the kernel's TAP queue fills and the
/// kernel drops (counted from the interface's tx_dropped). When read returns EAGAIN the thread polls
/// the TAP and an eventfd that a stop writes, so a stop ends it at once (a migration source hands
/// the TAP to its target as soon as both loops have returned). A dedicated writer thread takes up
/// to <see cref="WriteBatchFrames"/> frames from the outbound queue at a time and writes them
/// with one write(2) each (a TAP takes one frame per write); while it sleeps, whoever queues a
/// frame writes it at once on its own thread instead of waking it.
/// </para>
/// <para>
/// With an <see cref="InputLoop"/> (the user-mode gateway's poller in <c>netwire run</c>) there
/// is no reader thread: that loop watches the TAP and calls the end on its own thread to read a
/// burst of frames, which it hands to the receiver (the gateway, on that same thread). A guest's
/// frame and a host socket's readiness then wake one thread instead of two (docs/performance.md,
/// "Connection setup: one thread for the TAP and the host sockets"). When the receiver is full
/// the end stops the watch and resumes it once the receiver has room.
/// </para>
/// <para>
/// Offloads: when the receiver takes offloaded frames (<see cref="IPacketReceiver.AcceptedOffloads"/>:
/// the user-mode gateway does, a QEMU stream or datagram guest does not), the TAP is opened with
/// IFF_VNET_HDR and TUNSETOFFLOAD turns on what the receiver takes. The kernel then hands over
/// TCP segments of up to 64 KiB with their checksum left undone (one read instead of dozens,
/// and no checksum computed on either side), each frame after a <see cref="VirtioNetHeader"/>
/// that becomes the frame's <see cref="Frame.Offload"/>; and the end takes offloaded frames in
/// turn (<see cref="AcceptedOffloads"/>): a large segment written with a GSO header is cut, or
/// handed to the namespace's TCP whole, by the kernel. When the kernel refuses the offloads the
/// frames it sends stay plain; without a receiver that takes offloads the TAP has no vnet header.
/// </para>
/// <para>
/// Why threads and batches (docs/performance.md, "netwire bridge"): a TAP costs a system call
/// per frame, so the loops must add little else. Taking frames in batches frees many queue slots
/// at once, so a producer that waits on a full queue (the guest socket's receive loop) is woken
/// once per batch instead of once per frame; the transmit counters are updated once per batch.
/// Towards a stream guest the reader reads a burst into the guest socket's send buffer and sends
/// it itself while nothing is queued there (<see cref="IPacketReceiver.BurstSink"/>): no frame
/// rented, no queue, no wake-up of the guest's send thread; with frames queued or a full socket it
/// falls back to the queue. Where io_uring is available it reads up to 32 frames per system call
/// (<see cref="TapReadRing"/>), otherwise one per read(2) straight into the send buffer. Otherwise the reader hands a burst on in one call
/// (<see cref="IPacketReceiver.RecvPackets"/>), so the
/// stream guest's send thread wakes once per burst, and sleeps on a full receiver on a signal
/// the receiving end's queue sets directly once half of it is free; both threads sleep on
/// eventfds (<see cref="EventFdSignal"/>), not on the thread pool or a monitor. A receiver
/// without that signal (the user-mode gateway) is waited on through <see cref="ThreadWaiter"/>,
/// which allocates nothing. A raw fd loop was measured faster than SharpPcap's TunnelDevice, which reads
/// through a stream and a Task per frame.
/// </para>
/// </remarks>
public sealed class TapEnd : WireEnd
{
    /// <summary>Largest read from a TAP: a 64 KiB packet (MTU or TSO segment), the Ethernet header and a virtio-net header.</summary>
    private const int ScratchLength = 65_536 + 64 + VirtioNetHeader.Length;

    /// <summary>
    /// Longest sleep of a loop in one wait (an empty TAP, a full receiver, an empty queue) before
    /// it looks again; a stop wakes every wait at once, so this only bounds a missed wake-up.
    /// Tests lengthen it to show that a stop does not wait for it.
    /// </summary>
    internal int PollTimeoutMs { get; init; } = 200;

    /// <summary>
    /// Whether bursts towards a burst sink are read through io_uring where the kernel allows it
    /// (<see cref="TapReadRing"/>); tests turn it off to cover the read(2) path.
    /// </summary>
    internal bool UseReadRing { get; init; } = true;

    /// <summary>How often a busy TAP is tried again (<see cref="WaitWhileBusy"/>).</summary>
    private static readonly TimeSpan s_busyRetry = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Most frames the reader holds before handing them on. It reads until the kernel's queue is
    /// empty or this many are held, then hands them to the receiver together, so the guest side's
    /// send loop wakes once per burst and sends them with few system calls instead of one each.
    /// Half the default queue: with 32, a TAP kept full woke the stream guest's send thread every
    /// 30 to 40 frames (docs/performance.md, "netwire bridge").
    /// </summary>
    private const int ReadBurstFrames = 128;

    /// <summary>
    /// Most frames the writer takes from the queue at once. Frames in a batch are out of the
    /// queue but not yet written, so the end holds at most the queue capacity plus this many.
    /// </summary>
    private const int WriteBatchFrames = 64;

    private readonly string _ifName;
    private readonly ILogger _logger;

    /// <summary>The interface's tx_dropped counter; null for a TAP in another namespace, whose /sys we cannot see.</summary>
    private readonly string? _statsPath;

    /// <summary>An fd opened elsewhere (<see cref="NamespaceTap"/>) that RunAsync adopts instead of opening the TAP; -1 when none.</summary>
    private int _adoptedFd = -1;

    /// <summary>The TAP's fd; -1 until opened and after dispose. Written by RunAsync and dispose.</summary>
    private int _fd = -1;

    /// <summary>Frames read and written carry a virtio-net header. Set by RunAsync before the loops start.</summary>
    private bool _vnetHeader;

    /// <summary>What <see cref="AcceptedOffloads"/> reports (a <see cref="WireOffloads"/>); set by RunAsync once the TAP is open.</summary>
    private int _accepted;

    /// <summary>Held while frames are taken from the queue and written: by the writer thread, or by a producer writing inline.</summary>
    private readonly Lock _writeLock = new();

    /// <summary>The frames of the batch being written. Guarded by <see cref="_writeLock"/>.</summary>
    private readonly Frame[] _writeBatch = new Frame[WriteBatchFrames];

    /// <summary>Wakes the writer thread; set when it starts. Guarded by <see cref="_writeLock"/> (written), read by producers.</summary>
    private ThreadSignal? _writerWake;

    /// <summary>True while the writer thread runs (inline writes only then). Guarded by <see cref="_writeLock"/>.</summary>
    private bool _writing;

    /// <summary>Creates an end for TAP <paramref name="ifName"/> (created if it does not exist).</summary>
    public TapEnd(string name, string ifName, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        TunTap.ValidateName(ifName);
        _ifName = ifName;
        _logger = logger;
        _statsPath = $"/sys/class/net/{ifName}/statistics/tx_dropped";
    }

    /// <summary>
    /// Creates an end for a TAP already open as <paramref name="fd"/> (non-blocking, up), such as
    /// one opened inside a container's namespaces; the end owns the fd from here on. Its kernel
    /// drop counter is not read: the interface lives in a namespace this process cannot see.
    /// </summary>
    public TapEnd(string name, string ifName, int fd, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        TunTap.ValidateName(ifName);
        _ifName = ifName;
        _logger = logger;
        _adoptedFd = fd;
    }

    /// <inheritdoc/>
    public override string Description => $"tap {_ifName}";

    /// <summary>
    /// Waits while another process has the TAP open, instead of failing: a migration target's
    /// guest end, which takes the TAP once the source lets it go (docs/migration.md, "A namespace
    /// peer"). Set before <see cref="RunAsync"/>.
    /// </summary>
    public bool WaitWhileBusy { get; set; }

    /// <summary>
    /// An event loop that reads the TAP on its own thread instead of a reader thread of this end
    /// (<see cref="IInputLoop"/>); null (the default) for a reader thread. Set before <see cref="RunAsync"/>.
    /// </summary>
    public IInputLoop? InputLoop { get; set; }

    /// <summary>
    /// Everything once the TAP is open with a virtio-net header (the kernel cuts large segments and
    /// finishes checksums we leave to it), nothing before or without one.
    /// </summary>
    public override WireOffloads AcceptedOffloads => (WireOffloads)Volatile.Read(ref _accepted);

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        var adopted = Interlocked.Exchange(ref _adoptedFd, -1);
        if (adopted >= 0)
        {
            // Opened elsewhere without a virtio-net header: plain frames both ways.
            _fd = adopted;
        }
        else
        {
            var wanted = receiver.AcceptedOffloads & WireOffloads.All;
            _vnetHeader = wanted != WireOffloads.None;
            _fd = await OpenAsync(_vnetHeader, cancellationToken).ConfigureAwait(false);
            if (_vnetHeader)
            {
                if (TunTap.TrySetOffloads(_fd, wanted, out var errno))
                {
                    DevicesLog.TapOffloads(_logger, _ifName, wanted.ToString());
                }
                else
                {
                    DevicesLog.TapOffloadsRefused(_logger, _ifName, Libc.Describe(errno));
                }

                // Writing offloaded frames needs only the header, whatever TUNSETOFFLOAD said.
                Volatile.Write(ref _accepted, (int)WireOffloads.All);
            }

            if (!TunTap.TryBringUp(_ifName, out var error))
            {
                DevicesLog.TapNotUp(_logger, _ifName, error ?? "unknown");
            }
        }

        RefreshCounters();
        DevicesLog.TapOpened(_logger, _ifName);
        if (InputLoop is { } loop)
        {
            var reader = new LoopReader(this, receiver);
            using (reader.Watch = loop.WatchInput(_fd, reader))
            {
                await DeviceThread.RunAllAsync(
                    cancellationToken,
                    token => reader.Failed.WaitAsync(token),
                    token => DeviceThread.Run($"tap-write {_ifName}", () => WriteLoop(token))).ConfigureAwait(false);
            }

            return;
        }

        await DeviceThread.RunAllAsync(
            cancellationToken,
            token => DeviceThread.Run($"tap-read {_ifName}", () => ReadLoop(receiver, token)),
            token => DeviceThread.Run($"tap-write {_ifName}", () => WriteLoop(token))).ConfigureAwait(false);
    }

    private async Task<int> OpenAsync(bool vnetHeader, CancellationToken cancellationToken)
    {
        if (!WaitWhileBusy)
        {
            return TunTap.Open(_ifName, vnetHeader);
        }

        var logged = false;
        while (true)
        {
            var fd = TunTap.Open(_ifName, vnetHeader, busyIsError: false);
            if (fd >= 0)
            {
                return fd;
            }

            if (!logged)
            {
                DevicesLog.TapBusyWaiting(_logger, _ifName);
                logged = true;
            }

            await Task.Delay(s_busyRetry, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public override void RefreshCounters()
    {
        if (_statsPath is null)
        {
            return;
        }

        try
        {
            if (long.TryParse(File.ReadAllText(_statsPath).AsSpan().Trim(), out var dropped))
            {
                Counters.ObserveKernelDrops(dropped);
            }
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
        }
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        var unused = Interlocked.Exchange(ref _adoptedFd, -1);
        if (unused >= 0)
        {
            Libc.Close(unused);
        }

        var fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            RefreshCounters();
            DrainKernelQueue(fd);
            Libc.Close(fd);
        }

        return default;
    }

    /// <summary>
    /// Reads what is still in the kernel's TAP queue at shutdown and counts it as Shutdown drops,
    /// so that sent = received + kernel drops + shutdown drops holds for the host side.
    /// </summary>
    private unsafe void DrainKernelQueue(int fd)
    {
        var scratch = new byte[ScratchLength];
        fixed (byte* buffer = scratch)
        {
            while (Libc.Read(fd, buffer, ScratchLength) > 0)
            {
                Counters.Dropped(DropReason.Shutdown);
            }
        }
    }

    private unsafe void ReadLoop(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        var scratch = GC.AllocateUninitializedArray<byte>(ScratchLength, pinned: true);

        // The stop wakes the poll at once through an eventfd (a migration source hands the TAP
        // over as soon as both loops have returned); without one, the poll's timeout notices it.
        var stopFd = Libc.EventFd(0, Libc.EventFdFlags);
        var pollFds = stackalloc Libc.PollFd[2];
        pollFds[0] = new Libc.PollFd { Fd = _fd, Events = Libc.PollIn };
        pollFds[1] = new Libc.PollFd { Fd = stopFd, Events = Libc.PollIn };
        var waiter = new ThreadWaiter(PollTimeoutMs);
        var wakeWaiter = waiter.WakeOn(cancellationToken);
        var room = EventFdSignal.Create();
        var wakeRoom = cancellationToken.UnsafeRegister(static state => ((ThreadSignal)state!).Set(), room);
        var wakePoll = stopFd >= 0 ? cancellationToken.UnsafeRegister(static state => SignalEventFd((int)state!), stopFd) : default;
        var burst = new Frame[ReadBurstFrames];
        var held = 0;
        var headerLength = _vnetHeader ? VirtioNetHeader.Length : 0;

        // A stream guest's send buffer, which takes plain frames only (it takes no offloads, so
        // the TAP has no virtio-net header towards it).
        var sink = headerLength == 0 ? receiver.BurstSink : null;

        // Bursts of reads in one system call each, towards that sink; null without io_uring.
        var ring = sink is not null && UseReadRing ? TapReadRing.TryCreate(_fd, ScratchLength) : null;
        try
        {
            fixed (byte* buffer = scratch)
            {
                while (!cancellationToken.IsCancellationRequested)
                {
                    if (!receiver.CanRecvPacket)
                    {
                        // Backpressure: hand on what is held, then leave frames in the kernel's
                        // queue until the receiver has room.
                        HandOn(receiver, burst, ref held, waiter, room, cancellationToken);
                        WaitForRoom(receiver, waiter, room, cancellationToken);
                        continue;
                    }

                    if (held == 0 && sink is not null && sink.TryBeginBurst())
                    {
                        // Nothing queued before them: read a burst into the guest's send buffer and
                        // send it from this thread.
                        var empty = ReadBurstInto(sink, ref ring, burst, ref held);
                        if (held > 0)
                        {
                            // Frames the send buffer had no room for go on after the burst, in order.
                            HandOn(receiver, burst, ref held, waiter, room, cancellationToken);
                        }
                        else if (empty)
                        {
                            Libc.Poll(pollFds, stopFd >= 0 ? 2u : 1u, PollTimeoutMs);
                        }

                        continue;
                    }

                    var n = Libc.Read(_fd, buffer, ScratchLength);
                    if (n < 0)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno == Libc.EAgain)
                        {
                            // The kernel's queue is empty: what was read goes on now, so a quiet
                            // link adds no delay.
                            if (held > 0)
                            {
                                HandOn(receiver, burst, ref held, waiter, room, cancellationToken);
                                continue;
                            }

                            Libc.Poll(pollFds, stopFd >= 0 ? 2u : 1u, PollTimeoutMs);
                            continue;
                        }

                        if (errno == Libc.EIntr)
                        {
                            continue;
                        }

                        throw ReadFailure(errno);
                    }

                    if (n - headerLength < FramePool.MinFrameLength)
                    {
                        Counters.Dropped(DropReason.BadLength);
                        continue;
                    }

                    var frame = Pool.Rent(new ReadOnlySpan<byte>(buffer + headerLength, (int)n - headerLength));
                    if (headerLength > 0)
                    {
                        frame.Offload = VirtioNetHeader.Read(new ReadOnlySpan<byte>(buffer, headerLength));
                    }

                    burst[held++] = frame;
                    if (held == burst.Length)
                    {
                        HandOn(receiver, burst, ref held, waiter, room, cancellationToken);
                    }
                }
            }
        }
        finally
        {
            // Disposing a registration waits for its callback if it is running: the eventfd is
            // closed only once nobody can write to it.
            wakePoll.Dispose();
            wakeWaiter.Dispose();
            wakeRoom.Dispose();
            EventFdSignal.Release(room);
            ring?.Dispose();
            if (stopFd >= 0)
            {
                Libc.Close(stopFd);
            }

            // Cancelled while holding frames the receiver had no room for: account for them.
            if (held > 0)
            {
                for (var i = 0; i < held; i++)
                {
                    burst[i].Dispose();
                }

                Counters.Dropped(DropReason.Shutdown, held);
            }
        }
    }

    /// <summary>
    /// Reads up to <see cref="ReadBurstFrames"/> frames into <paramref name="sink"/> (a burst begun
    /// by the caller) and ends the burst, which sends them; true when the kernel's queue was found
    /// empty. The frames are counted as received once read: the sink delivers them or counts them
    /// as dropped. Nothing is rented per frame, and the stream guest's send thread is not woken
    /// (docs/performance.md, "netwire bridge"). With <paramref name="ring"/>, up to
    /// <see cref="TapReadRing.Slots"/> frames are read per system call and copied from its slots
    /// into the sink; frames the sink has no room for (large ones) are rented into
    /// <paramref name="held"/>, in order, for the caller to hand on after the burst. Without a
    /// ring each frame is read straight into the sink.
    /// </summary>
    private unsafe bool ReadBurstInto(IBurstSink sink, ref TapReadRing? ring, Frame[] held, ref int heldCount)
    {
        var frames = 0;
        long bytes = 0;
        try
        {
            while (frames < ReadBurstFrames)
            {
                if (ring is not null)
                {
                    var want = Math.Min(TapReadRing.Slots, Math.Min(ReadBurstFrames - frames, held.Length - heldCount));
                    var done = ring.ReadBurst(want);
                    var empty = false;
                    var unsupported = 0;
                    var failed = 0;
                    for (var i = 0; i < done; i++)
                    {
                        var result = ring.Result(i);
                        if (result < 0)
                        {
                            // A read that failed took no frame, so the slots after it keep the TAP's order.
                            if (result == -Libc.EAgain)
                            {
                                empty = true;
                            }
                            else if (TapReadRing.IsUnsupported(result))
                            {
                                unsupported = -result;
                            }
                            else if (failed == 0)
                            {
                                failed = -result;
                            }

                            continue;
                        }

                        if (result < FramePool.MinFrameLength)
                        {
                            Counters.Dropped(DropReason.BadLength);
                            continue;
                        }

                        var frame = ring.Frame(i, result);
                        var into = heldCount == 0 ? sink.NextFrame(result) : default;
                        if (into.IsEmpty)
                        {
                            // No room left in the send buffer: this frame and the ones after it
                            // go through the queue once the burst is sent.
                            held[heldCount++] = Pool.Rent(frame);
                            continue;
                        }

                        frame.CopyTo(into);
                        sink.CommitFrame(result);
                        frames++;
                        bytes += result;
                    }

                    if (done < want || unsupported != 0)
                    {
                        // The ring misbehaved, the call failed, or this kernel's io_uring cannot read
                        // a TAP without waiting: frame by frame from here on.
                        DevicesLog.TapReadRingOff(_logger, _ifName, unsupported != 0 ? Libc.Describe(unsupported) : done < 0 ? Libc.Describe(-done) : $"{done} of {want} reads completed");
                        ring.Dispose();
                        ring = null;
                    }

                    if (failed != 0)
                    {
                        throw ReadFailure(failed);
                    }

                    if (empty || heldCount > 0)
                    {
                        return empty;
                    }

                    continue;
                }

                var room = sink.NextFrame(ScratchLength);
                if (room.IsEmpty)
                {
                    return false;
                }

                nint n;
                fixed (byte* at = room)
                {
                    n = Libc.Read(_fd, at, room.Length);
                }

                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EAgain)
                    {
                        return true;
                    }

                    if (errno == Libc.EIntr)
                    {
                        continue;
                    }

                    throw ReadFailure(errno);
                }

                if (n < FramePool.MinFrameLength)
                {
                    Counters.Dropped(DropReason.BadLength);
                    continue;
                }

                sink.CommitFrame((int)n);
                frames++;
                bytes += n;
            }

            return false;
        }
        finally
        {
            if (frames > 0)
            {
                Counters.Received(frames, bytes);
            }

            sink.EndBurst();
        }
    }

    /// <summary>A read from the TAP failed for good; EBADFD: the interface was deleted under the open fd (ip link del).</summary>
    private IOException ReadFailure(int errno) => new(errno == Libc.EBadFd
        ? $"TAP '{_ifName}' was deleted while NetWire was using it"
        : $"read from TAP '{_ifName}' failed: {Libc.Describe(errno)}");

    /// <summary>
    /// Reads the TAP on an <see cref="IInputLoop"/>'s thread: a burst of frames per call, each
    /// handed to the receiver at once (the receiver runs on that thread and handles them after
    /// the call). Stops the watch while the receiver is full and resumes it when it has room; a
    /// failed read (the TAP deleted) fails <see cref="Failed"/>, which ends RunAsync.
    /// </summary>
    private sealed unsafe class LoopReader : IInputSource
    {
        /// <summary>Most frames one call reads: the loop looks at its sockets between bursts.</summary>
        private const int FramesPerCall = 64;

        private readonly TapEnd _end;
        private readonly IPacketReceiver _receiver;
        private readonly byte[] _scratch = GC.AllocateUninitializedArray<byte>(ScratchLength, pinned: true);
        private readonly int _headerLength;
        private readonly TaskCompletionSource _failed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Action _onRoom;

        private IInputWatch? _watch;

        /// <summary>The receiver's wait for room while the watch is stopped; consumed by <see cref="OnRoom"/>.</summary>
        private ValueTask _roomWait;

        public LoopReader(TapEnd end, IPacketReceiver receiver)
        {
            _end = end;
            _receiver = receiver;
            _headerLength = end._vnetHeader ? VirtioNetHeader.Length : 0;
            _onRoom = OnRoom;
        }

        /// <summary>The loop's watch of the TAP; set right after the watch starts (until then a full receiver does not stop it).</summary>
        public IInputWatch? Watch
        {
            get => Volatile.Read(ref _watch);
            set => Volatile.Write(ref _watch, value);
        }

        /// <summary>Faults when a read fails for good.</summary>
        public Task Failed => _failed.Task;

        public bool OnReadable()
        {
            var fd = _end._fd;
            fixed (byte* buffer = _scratch)
            {
                for (var i = 0; i < FramesPerCall; i++)
                {
                    if (!_receiver.CanRecvPacket)
                    {
                        var wait = _receiver.WaitCanRecvPacketAsync(CancellationToken.None);
                        if (wait.IsCompleted)
                        {
                            wait.GetAwaiter().GetResult();
                            continue;
                        }

                        if (Watch is null)
                        {
                            // Not stoppable yet (the watch is being set): the loop drains its queue and calls again.
                            _roomWait = wait;
                            wait.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onRoom);
                            return true;
                        }

                        // Backpressure: the frames stay in the kernel's queue until there is room.
                        _roomWait = wait;
                        wait.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_onRoom);
                        return false;
                    }

                    var n = Libc.Read(fd, buffer, ScratchLength);
                    if (n < 0)
                    {
                        var errno = Marshal.GetLastPInvokeError();
                        if (errno == Libc.EAgain)
                        {
                            return true;
                        }

                        if (errno == Libc.EIntr)
                        {
                            continue;
                        }

                        _failed.TrySetException(_end.ReadFailure(errno));
                        return false;
                    }

                    if (n - _headerLength < FramePool.MinFrameLength)
                    {
                        _end.Counters.Dropped(DropReason.BadLength);
                        continue;
                    }

                    var frame = _end.Pool.Rent(new ReadOnlySpan<byte>(buffer + _headerLength, (int)n - _headerLength));
                    if (_headerLength > 0)
                    {
                        frame.Offload = VirtioNetHeader.Read(new ReadOnlySpan<byte>(buffer, _headerLength));
                    }

                    _end.Counters.Received(frame.Length);
                    _receiver.RecvPacket(frame);
                }
            }

            return true;
        }

        private void OnRoom()
        {
            try
            {
                _roomWait.GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                return;
            }
            finally
            {
                _roomWait = default;
            }

            Watch?.Resume();
        }
    }

    private static unsafe void SignalEventFd(int fd)
    {
        ulong one = 1;
        _ = Libc.Write(fd, (byte*)&one, sizeof(ulong));
    }

    /// <summary>
    /// Hands the held frames to the receiver in order, as many at once as it has room for (a
    /// device end queues them together and wakes its thread once), waiting for room as needed
    /// (the frames were accepted from the kernel, so they are delivered, not dropped). Leaves
    /// <paramref name="held"/> at the frames still held when cancellation interrupts it.
    /// </summary>
    private void HandOn(IPacketReceiver receiver, Frame[] burst, ref int held, ThreadWaiter waiter, ThreadSignal room, CancellationToken cancellationToken)
    {
        var next = 0;
        try
        {
            while (next < held)
            {
                if (!receiver.CanRecvPacket)
                {
                    WaitForRoom(receiver, waiter, room, cancellationToken);
                    continue;
                }

                // Counted once handed into the wire, as every end does: rx_frames is what crossed.
                // The lengths are read before: a frame handed on may be sent and reused at once.
                long bytes = 0;
                for (var i = next; i < held; i++)
                {
                    bytes += burst[i].Length;
                }

                var taken = receiver.RecvPackets(burst.AsSpan(next, held - next));
                for (var i = next + taken; i < held; i++)
                {
                    bytes -= burst[i].Length;
                }

                Array.Clear(burst, next, taken);
                Counters.Received(taken, bytes);
                next += taken;
            }

            held = 0;
        }
        finally
        {
            if (held > 0 && next > 0)
            {
                // Keep the undelivered frames at the front for the caller's accounting.
                Array.Copy(burst, next, burst, 0, held - next);
                Array.Clear(burst, held - next, next);
                held -= next;
            }
        }
    }

    /// <summary>
    /// Blocks the reader until the receiver has room: on <paramref name="room"/>, which the
    /// receiving end's queue sets directly once half of it is free (one wake-up per half queue,
    /// no thread-pool worker in between), or, for a receiver that cannot do that (the user-mode
    /// gateway), through <paramref name="waiter"/>. Throws OperationCanceledException once the
    /// token fires (its registration sets <paramref name="room"/>).
    /// </summary>
    private void WaitForRoom(IPacketReceiver receiver, ThreadWaiter waiter, ThreadSignal room, CancellationToken cancellationToken)
    {
        while (!receiver.CanRecvPacket)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (receiver.TryArmRoomSignal(room))
            {
                room.Wait(PollTimeoutMs);
                continue;
            }

            if (!receiver.CanRecvPacket)
            {
                // No token: a cancellable queue wait allocates each time; the waiter looks at
                // the token between timeouts instead.
                waiter.Wait(receiver.WaitCanRecvPacketAsync(CancellationToken.None), cancellationToken);
            }
        }
    }

    private void WriteLoop(CancellationToken cancellationToken)
    {
        var wake = EventFdSignal.Create();
        using var stop = cancellationToken.UnsafeRegister(static state => ((ThreadSignal)state!).Set(), wake);
        lock (_writeLock)
        {
            _writerWake = wake;
            _writing = true;
        }

        Outbound.SetReaderSignal(OnFramesWhileWriterParked);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                int taken;
                lock (_writeLock)
                {
                    taken = WriteBatch();
                }

                if (taken > 0)
                {
                    continue;
                }

                if (Outbound.IsCompleted)
                {
                    return;
                }

                // The writer of the next frame writes it itself or wakes this thread (no
                // thread-pool hand-off); the token is looked at between timeouts.
                if (Outbound.TryParkReader())
                {
                    wake.Wait(PollTimeoutMs);
                    Outbound.UnparkReader();
                }
            }
        }
        finally
        {
            lock (_writeLock)
            {
                _writing = false;
            }

            // A producer's or the stop's late set does nothing once it is released.
            EventFdSignal.Release(wake);
        }
    }

    /// <summary>
    /// A frame was queued while the writer thread sleeps with nothing to do: the producer writes
    /// what is queued itself, on its own thread, unless a batch is being written already (then it
    /// wakes the thread). A quiet wire (a connection's handshake, a request and its answer) so
    /// costs no thread wake-up per frame. Frames are taken and written under
    /// <see cref="_writeLock"/> only, so they reach the TAP in queue order either way.
    /// </summary>
    private void OnFramesWhileWriterParked()
    {
        if (!_writeLock.TryEnter())
        {
            _writerWake?.Set();
            return;
        }

        try
        {
            if (!_writing)
            {
                // The writer thread has ended: the frames wait for the end's disposal.
                return;
            }

            do
            {
                while (WriteBatch() > 0)
                {
                }
            }
            while (!Outbound.TryParkReader());

            // Parked again on the sleeping thread's behalf: the next frame calls here (or wakes it).
        }
        finally
        {
            _writeLock.Exit();
        }
    }

    /// <summary>
    /// Takes up to <see cref="WriteBatchFrames"/> frames from the queue and writes them; returns
    /// how many were taken. Frames taken are always written (or counted as failed), also when
    /// cancellation arrives meanwhile: an accepted frame is never silently lost. Caller holds
    /// <see cref="_writeLock"/>.
    /// </summary>
    private int WriteBatch()
    {
        var batch = _writeBatch;
        var count = 0;
        while (count < batch.Length && Outbound.TryRead(out var frame))
        {
            batch[count++] = frame;
        }

        var written = 0;
        long bytes = 0;
        for (var i = 0; i < count; i++)
        {
            var frame = batch[i];
            batch[i] = null!;
            var length = frame.Length;
            if (WriteFrame(frame))
            {
                written++;
                bytes += length;
            }
        }

        if (written > 0)
        {
            Counters.Transmitted(written, bytes);
        }

        return count;
    }

    /// <summary>
    /// Writes one frame (after its virtio-net header when the TAP has one) and returns it to its
    /// pool; false (counted as SendFailed) when the kernel refused it.
    /// </summary>
    private unsafe bool WriteFrame(Frame frame)
    {
        try
        {
            var length = frame.Length;
            if (!_vnetHeader && !frame.Offload.IsPlain)
            {
                // Work left for a device this TAP cannot hand it to: producers ask AcceptedOffloads first.
                Counters.Dropped(DropReason.SendFailed);
                return false;
            }

            var header = stackalloc byte[VirtioNetHeader.Length];
            var vectors = stackalloc Libc.IoVec[2];
            if (_vnetHeader)
            {
                VirtioNetHeader.Write(new Span<byte>(header, VirtioNetHeader.Length), frame.Offload);
            }

            fixed (byte* data = frame.Span)
            {
                vectors[0] = new Libc.IoVec { Base = header, Length = VirtioNetHeader.Length };
                vectors[1] = new Libc.IoVec { Base = data, Length = (nuint)length };
                while (true)
                {
                    var n = _vnetHeader ? Libc.Writev(_fd, vectors, 2) : Libc.Write(_fd, data, length);
                    if (n >= 0)
                    {
                        return true;
                    }

                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EIntr)
                    {
                        continue;
                    }

                    if (errno == Libc.EAgain)
                    {
                        var pollFd = new Libc.PollFd { Fd = _fd, Events = Libc.PollOut };
                        Libc.Poll(&pollFd, 1, PollTimeoutMs);
                        continue;
                    }

                    // EIO while the interface is down, EINVAL for a frame the kernel refuses.
                    Counters.Dropped(DropReason.SendFailed);
                    return false;
                }
            }
        }
        finally
        {
            frame.Dispose();
        }
    }

    /// <summary>
    /// Blocks a device thread until a queue wait completes, without allocating: completion sets
    /// an event through a delegate made once, and the thread looks at its cancellation token at
    /// every timeout. (DeviceThread.Wait goes through AsTask, which allocates a Task for every
    /// wait that does not complete at once.) One per loop; not thread-safe.
    /// </summary>
    /// <remarks>
    /// A wait abandoned on cancellation is left to complete on its own; its completion only sets
    /// this waiter's event, which nobody waits on any more.
    /// </remarks>
    private sealed class ThreadWaiter
    {
        /// <summary>Guards <see cref="_completed"/>; the blocked thread waits on it with Monitor.</summary>
        private readonly object _gate = new();
        private readonly Action _signal;
        private readonly int _timeoutMs;

        /// <summary>True once the current wait completed; reset by the owning thread before each wait.</summary>
        private bool _completed;

        public ThreadWaiter(int timeoutMs)
        {
            _timeoutMs = timeoutMs;
            _signal = Signal;
        }

        /// <summary>Makes a blocked wait notice <paramref name="cancellationToken"/> at once rather than at its next timeout; dispose it when the loop ends.</summary>
        public CancellationTokenRegistration WakeOn(CancellationToken cancellationToken) =>
            cancellationToken.UnsafeRegister(static state => ((ThreadWaiter)state!).Wake(), this);

        /// <summary>Waits for <paramref name="wait"/>; throws OperationCanceledException once the token fires.</summary>
        public void Wait(ValueTask wait, CancellationToken cancellationToken)
        {
            if (!wait.IsCompleted)
            {
                Reset();
                wait.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_signal);
                Block(cancellationToken);
            }

            wait.GetAwaiter().GetResult();
        }

        /// <summary>Waits for <paramref name="wait"/> and returns its result; throws OperationCanceledException once the token fires.</summary>
        public bool Wait(ValueTask<bool> wait, CancellationToken cancellationToken)
        {
            if (!wait.IsCompleted)
            {
                Reset();
                wait.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_signal);
                Block(cancellationToken);
            }

            return wait.GetAwaiter().GetResult();
        }

        private void Reset()
        {
            lock (_gate)
            {
                _completed = false;
            }
        }

        private void Signal()
        {
            lock (_gate)
            {
                _completed = true;
                Monitor.Pulse(_gate);
            }
        }

        /// <summary>Wakes the blocked thread without completing its wait (it looks at its token).</summary>
        private void Wake()
        {
            lock (_gate)
            {
                Monitor.Pulse(_gate);
            }
        }

        private void Block(CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                // The token is looked at under the lock, so a Wake cannot fall between the look and the wait.
                while (!_completed)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate, _timeoutMs);
                }
            }
        }
    }
}
