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
/// kernel drops (counted from the interface's tx_dropped). When read returns EAGAIN the thread polls with a
/// short timeout, which is also how it notices cancellation. A dedicated writer thread takes up
/// to <see cref="WriteBatchFrames"/> frames from the outbound queue at a time and writes them
/// with one write(2) each (a TAP takes one frame per write).
/// </para>
/// <para>
/// Why threads and batches (docs/performance.md, "netwire bridge"): a TAP costs a system call
/// per frame, so the loops must add little else. Taking frames in batches frees many queue slots
/// at once, so a producer that waits on a full queue (the guest socket's receive loop) is woken
/// once per batch instead of once per frame; the transmit counters are updated once per batch.
/// Both threads block on the queue's waits through <see cref="ThreadWaiter"/>, which allocates
/// nothing. A raw fd loop was measured faster than SharpPcap's TunnelDevice, which reads
/// through a stream and a Task per frame.
/// </para>
/// </remarks>
public sealed class TapEnd : WireEnd
{
    /// <summary>Largest frame a TAP hands us: 64 KiB MTU plus the Ethernet header.</summary>
    private const int ScratchLength = 65_536 + 64;

    private const int PollTimeoutMs = 200;

    /// <summary>How often a busy TAP is tried again (<see cref="WaitWhileBusy"/>).</summary>
    private static readonly TimeSpan s_busyRetry = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Most frames the reader holds before handing them on. It reads until the kernel's queue is
    /// empty or this many are held, then hands them to the receiver together, so the guest side's
    /// send loop wakes once per burst and sends them with one system call instead of one each.
    /// </summary>
    private const int ReadBurstFrames = 32;

    /// <summary>
    /// Most frames the writer takes from the queue at once. Frames in a batch are out of the
    /// queue but not yet written, so the end holds at most the queue capacity plus this many.
    /// </summary>
    private const int WriteBatchFrames = 64;

    private readonly string _ifName;
    private readonly ILogger _logger;
    private readonly string _statsPath;

    /// <summary>The TAP's fd; -1 until opened and after dispose. Written by RunAsync and dispose.</summary>
    private int _fd = -1;

    /// <summary>Creates an end for TAP <paramref name="ifName"/> (created if it does not exist).</summary>
    public TapEnd(string name, string ifName, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        TunTap.ValidateName(ifName);
        _ifName = ifName;
        _logger = logger;
        _statsPath = $"/sys/class/net/{ifName}/statistics/tx_dropped";
    }

    /// <inheritdoc/>
    public override string Description => $"tap {_ifName}";

    /// <summary>
    /// Waits while another process has the TAP open, instead of failing: a migration target's
    /// guest end, which takes the TAP once the source lets it go (docs/migration.md, "A namespace
    /// peer"). Set before <see cref="RunAsync"/>.
    /// </summary>
    public bool WaitWhileBusy { get; set; }

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        _fd = await OpenAsync(cancellationToken).ConfigureAwait(false);
        if (!TunTap.TryBringUp(_ifName, out var error))
        {
            DevicesLog.TapNotUp(_logger, _ifName, error ?? "unknown");
        }

        RefreshCounters();
        DevicesLog.TapOpened(_logger, _ifName);
        await DeviceThread.RunAllAsync(
            cancellationToken,
            token => DeviceThread.Run($"tap-read {_ifName}", () => ReadLoop(receiver, token)),
            token => DeviceThread.Run($"tap-write {_ifName}", () => WriteLoop(token))).ConfigureAwait(false);
    }

    private async Task<int> OpenAsync(CancellationToken cancellationToken)
    {
        if (!WaitWhileBusy)
        {
            return TunTap.Open(_ifName);
        }

        var logged = false;
        while (true)
        {
            var fd = TunTap.Open(_ifName, busyIsError: false);
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
        var pollFd = new Libc.PollFd { Fd = _fd, Events = Libc.PollIn };
        var waiter = new ThreadWaiter(PollTimeoutMs);
        var burst = new Frame[ReadBurstFrames];
        var held = 0;
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
                        HandOn(receiver, burst, ref held, waiter, cancellationToken);
                        waiter.Wait(receiver.WaitCanRecvPacketAsync(cancellationToken), cancellationToken);
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
                                HandOn(receiver, burst, ref held, waiter, cancellationToken);
                                continue;
                            }

                            Libc.Poll(&pollFd, 1, PollTimeoutMs);
                            continue;
                        }

                        if (errno == Libc.EIntr)
                        {
                            continue;
                        }

                        // EBADFD: the interface was deleted under the open fd (ip link del).
                        throw new IOException(errno == Libc.EBadFd
                            ? $"TAP '{_ifName}' was deleted while NetWire was using it"
                            : $"read from TAP '{_ifName}' failed: {Libc.Describe(errno)}");
                    }

                    if (n < FramePool.MinFrameLength)
                    {
                        Counters.Dropped(DropReason.BadLength);
                        continue;
                    }

                    burst[held++] = Pool.Rent(new ReadOnlySpan<byte>(buffer, (int)n));
                    if (held == burst.Length)
                    {
                        HandOn(receiver, burst, ref held, waiter, cancellationToken);
                    }
                }
            }
        }
        finally
        {
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
    /// Hands the held frames to the receiver in order, waiting for room as needed (the frames were
    /// accepted from the kernel, so they are delivered, not dropped). Leaves <paramref name="held"/>
    /// at the frames still held when cancellation interrupts it.
    /// </summary>
    private void HandOn(IPacketReceiver receiver, Frame[] burst, ref int held, ThreadWaiter waiter, CancellationToken cancellationToken)
    {
        var next = 0;
        try
        {
            while (next < held)
            {
                if (!receiver.CanRecvPacket)
                {
                    waiter.Wait(receiver.WaitCanRecvPacketAsync(cancellationToken), cancellationToken);
                    continue;
                }

                // Counted when handed into the wire, as every end does: rx_frames is what crossed.
                Counters.Received(burst[next].Length);
                receiver.RecvPacket(burst[next]);
                burst[next++] = null!;
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

    private void WriteLoop(CancellationToken cancellationToken)
    {
        var batch = new Frame[WriteBatchFrames];
        var waiter = new ThreadWaiter(PollTimeoutMs);
        while (!cancellationToken.IsCancellationRequested)
        {
            var count = 0;
            while (count < batch.Length && Outbound.TryRead(out var frame))
            {
                batch[count++] = frame;
            }

            if (count == 0)
            {
                // No token here: a cancellable wait allocates a waiter each time, the plain one
                // reuses the queue's own; the waiter checks the token between timeouts instead.
                if (!waiter.Wait(Outbound.WaitToReadAsync(CancellationToken.None), cancellationToken))
                {
                    return;
                }

                continue;
            }

            // Frames taken from the queue are always written (or counted as failed), even when
            // cancellation arrives meanwhile: an accepted frame is never silently lost.
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
        }
    }

    /// <summary>Writes one frame and returns it to its pool; false (counted as SendFailed) when the kernel refused it.</summary>
    private unsafe bool WriteFrame(Frame frame)
    {
        try
        {
            var length = frame.Length;
            fixed (byte* data = frame.Span)
            {
                while (true)
                {
                    var n = Libc.Write(_fd, data, length);
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

        private void Block(CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                while (!_completed)
                {
                    if (!Monitor.Wait(_gate, _timeoutMs))
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                    }
                }
            }
        }
    }
}
