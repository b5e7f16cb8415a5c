using System.Diagnostics;
using System.Runtime.CompilerServices;
using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Devices.Pcap;

/// <summary>Why a frame of the capture was not sent.</summary>
public enum ReplaySkipReason
{
    /// <summary>Shorter than an Ethernet header (14 bytes).</summary>
    Runt,

    /// <summary>Longer than <see cref="FramePool.MaxFrameLength"/>, which no wire end accepts.</summary>
    TooLong,

    /// <summary>Captured shorter than it was on the wire (snaplen): sending it would send a different frame.</summary>
    Truncated,
}

/// <summary>Counters a replay updates as it goes; read from another thread for progress.</summary>
public sealed class ReplayProgress
{
    /// <summary>Frames handed to the target; written by the replay loop only.</summary>
    private long _frames;

    /// <summary>Bytes handed to the target; written by the replay loop only.</summary>
    private long _bytes;

    /// <summary>Skipped frames by <see cref="ReplaySkipReason"/>; written by the replay loop only.</summary>
    private readonly long[] _skipped = new long[Enum.GetValues<ReplaySkipReason>().Length];

    /// <summary>Frames sent so far.</summary>
    public long Frames => Volatile.Read(ref _frames);

    /// <summary>Bytes sent so far.</summary>
    public long Bytes => Volatile.Read(ref _bytes);

    /// <summary>Frames skipped for <paramref name="reason"/>.</summary>
    public long Skipped(ReplaySkipReason reason) => Volatile.Read(ref _skipped[(int)reason]);

    internal void Sent(int length)
    {
        Volatile.Write(ref _frames, _frames + 1);
        Volatile.Write(ref _bytes, _bytes + length);
    }

    internal void Skip(ReplaySkipReason reason) => Volatile.Write(ref _skipped[(int)reason], _skipped[(int)reason] + 1);
}

/// <summary>
/// Plays a capture file into a wire end, as the device behind a guest or host end would.
/// </summary>
/// <remarks>
/// How this works: frames are read with <see cref="CaptureFileReader"/>, each one is scheduled
/// (capture time scaled, frame count over a rate, bit count over a rate, or now), the loop waits
/// for its time (a timer for the bulk, a yield-spin for the last millisecond), then waits until
/// the target <see cref="INetWire.CanSendPacket"/> (net_wire backpressure: a slow target slows
/// the replay, nothing is dropped) and hands the frame over in a pooled <see cref="Frame"/>.
/// Schedules are absolute from the start, so a late frame is followed by a burst that catches up
/// and the average rate holds. A bad record stops the replay with its
/// <see cref="CaptureFormatException"/>; the frames before it have been sent.
/// Into an end that drains a <see cref="FrameRing"/> (null, pcap), the same loop runs on its own
/// thread and copies each frame from the reader's buffer straight into a ring slot instead of a
/// pooled frame: no lock per frame and no thread pool between the replay and the end.
/// </remarks>
public static class CaptureReplayer
{
    /// <summary>Reads the whole file once; returns the packet count, or throws the first <see cref="CaptureFormatException"/>.</summary>
    public static long Validate(string path)
    {
        using var reader = CaptureFileReader.Open(path);
        while (reader.TryReadNext(out _))
        {
        }

        return reader.RecordsRead;
    }

    /// <summary>Replays <paramref name="path"/> into <paramref name="target"/>; returns the first format error, if any, after the frames before it were sent.</summary>
    public static async Task<CaptureFormatException?> RunAsync(string path, INetWire target, FramePool pool, ReplayOptions options, ReplayProgress progress, CancellationToken cancellationToken)
    {
        using var state = new ReplayState(path);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Step step;
            try
            {
                step = Burst(state, target, pool, options, progress);
            }
            catch (CaptureFormatException ex)
            {
                return ex;
            }

            switch (step)
            {
                case Step.Done:
                    return null;
                case Step.TargetFull:
                    // net_wire backpressure: a slow target slows the replay, nothing is dropped.
                    await target.WaitCanSendPacketAsync(cancellationToken).ConfigureAwait(false);
                    break;
                case Step.TooEarly:
                    await WaitUntilAsync(state.Clock, state.PendingNs, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>
    /// Replays <paramref name="path"/> into <paramref name="ring"/> from a dedicated thread (the
    /// ring's producer); the task ends with the first format error, if any, after the frames
    /// before it were published. The ring is completed when the replay ends, however it ends.
    /// </summary>
    /// <remarks>
    /// No thread pool on the way: frames are copied from the reader's buffer straight into ring
    /// slots and published in batches of <see cref="PublishFrames"/>; a full ring makes this
    /// thread wait (spin, then sleep until the consumer releases slots), never drop.
    /// </remarks>
    public static Task<CaptureFormatException?> RunAsync(string path, FrameRing ring, ReplayOptions options, ReplayProgress progress, CancellationToken cancellationToken) =>
        DeviceThread.Run("replay", () => Run(path, ring, options, progress, cancellationToken));

    private static CaptureFormatException? Run(string path, FrameRing ring, ReplayOptions options, ReplayProgress progress, CancellationToken cancellationToken)
    {
        try
        {
            using var state = new ReplayState(path);
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Step step;
                try
                {
                    step = Burst(state, ring, options, progress);
                }
                catch (CaptureFormatException ex)
                {
                    return ex;
                }

                switch (step)
                {
                    case Step.Done:
                        return null;
                    case Step.TargetFull:
                        ring.Publish();
                        ring.WaitWritable(cancellationToken);
                        break;
                    case Step.TooEarly:
                        ring.Publish();
                        WaitUntil(state.Clock, state.PendingNs, cancellationToken);
                        break;
                }
            }
        }
        finally
        {
            ring.Complete();
        }
    }

    /// <summary>
    /// Writes frames into <paramref name="ring"/> until it is full, the next frame is not due,
    /// the budget is spent or the replay is over, publishing every <see cref="PublishFrames"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Step Burst(ReplayState state, FrameRing ring, ReplayOptions options, ReplayProgress progress)
    {
        for (var budget = 0; budget < BurstFrames; budget++)
        {
            if (!state.HasPending && !TryReadDue(state, options, progress))
            {
                return Step.Done;
            }

            if (state.PendingNs > 0 && state.PendingNs > ElapsedNs(state.Clock))
            {
                return Step.TooEarly;
            }

            var data = state.Reader!.Data;
            if (!ring.TryWrite(data))
            {
                return Step.TargetFull;
            }

            progress.Sent(data.Length);
            state.HasPending = false;
            state.Sent++;
            state.Bits += data.Length * 8L;
            if (ring.Unpublished >= PublishFrames)
            {
                ring.Publish();
            }
        }

        return Step.Continue;
    }

    /// <summary>
    /// Sends frames without awaiting until the target is full, the next frame is not due, the
    /// budget is spent or the replay is over. A frame read but not sent stays pending in
    /// <paramref name="state"/> (its bytes stay valid in the reader until the next read).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Step Burst(ReplayState state, INetWire target, FramePool pool, ReplayOptions options, ReplayProgress progress)
    {
        for (var budget = 0; budget < BurstFrames; budget++)
        {
            if (!state.HasPending && !TryReadDue(state, options, progress))
            {
                return Step.Done;
            }

            if (state.PendingNs > 0 && state.PendingNs > ElapsedNs(state.Clock))
            {
                return Step.TooEarly;
            }

            if (!target.CanSendPacket && !SpinUntilCanSend(target))
            {
                return Step.TargetFull;
            }

            var data = state.Reader!.Data;
            target.SendPacket(pool.Rent(data));
            progress.Sent(data.Length);
            state.HasPending = false;
            state.Sent++;
            state.Bits += data.Length * 8L;
        }

        return Step.Continue;
    }

    /// <summary>
    /// A target that is full now is usually being drained by its device thread: spinning a few
    /// dozen times lets it take a batch and costs less than an asynchronous wait and wake-up per
    /// frame, which is what a queue kept exactly full otherwise does (one hand-off per frame).
    /// </summary>
    private static bool SpinUntilCanSend(INetWire target)
    {
        var spinner = default(SpinWait);
        for (var i = 0; i < 40; i++)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
            if (target.CanSendPacket)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Reads the next frame that can be sent into the pending slot, opening the next loop as needed; false when all are sent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool TryReadDue(ReplayState state, ReplayOptions options, ReplayProgress progress)
    {
        while (true)
        {
            if (options.Limit > 0 && state.Sent >= options.Limit)
            {
                return false;
            }

            if (state.Reader is null)
            {
                if (state.Loop >= options.Loops)
                {
                    return false;
                }

                state.Loop++;
                state.FirstTs = -1;
                state.Reader = CaptureFileReader.Open(state.Path);
            }

            if (!state.Reader.TryReadNext(out var record))
            {
                state.Reader.Dispose();
                state.Reader = null;
                state.LoopBaseNs = state.LastScheduledNs;
                continue;
            }

            var length = record.CapturedLength;
            if (length < FramePool.MinFrameLength)
            {
                progress.Skip(ReplaySkipReason.Runt);
                continue;
            }

            if (length > FramePool.MaxFrameLength)
            {
                progress.Skip(ReplaySkipReason.TooLong);
                continue;
            }

            if (record.OriginalLength > length)
            {
                progress.Skip(ReplaySkipReason.Truncated);
                continue;
            }

            if (state.FirstTs < 0)
            {
                state.FirstTs = record.TimestampNs;
            }

            var scheduledNs = options.Pacing switch
            {
                ReplayPacing.Original => state.LoopBaseNs + (long)((record.TimestampNs - state.FirstTs) / options.Multiplier),
                ReplayPacing.FramesPerSecond => (long)(state.Sent * 1e9 / options.Rate),
                ReplayPacing.Megabits => (long)(state.Bits * 1e3 / options.Rate),
                _ => 0,
            };

            // Schedules are absolute from the start: a late frame is followed by a catching-up burst.
            state.PendingNs = Math.Max(scheduledNs, state.LastScheduledNs);
            state.LastScheduledNs = state.PendingNs;
            state.HasPending = true;
            return true;
        }
    }

    private static async ValueTask WaitUntilAsync(Stopwatch clock, long scheduledNs, CancellationToken cancellationToken)
    {
        var remainingNs = scheduledNs - ElapsedNs(clock);
        if (remainingNs > 2_000_000)
        {
            // Timers fire up to ~1 ms late on Linux; sleep short of the deadline and spin the rest.
            await Task.Delay(TimeSpan.FromTicks((remainingNs - 1_500_000) / 100), cancellationToken).ConfigureAwait(false);
        }

        while (ElapsedNs(clock) < scheduledNs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Thread.Yield();
        }
    }

    /// <summary>The ring producer's wait: <see cref="WaitUntilAsync"/> on its own thread.</summary>
    private static void WaitUntil(Stopwatch clock, long scheduledNs, CancellationToken cancellationToken)
    {
        var remainingNs = scheduledNs - ElapsedNs(clock);
        if (remainingNs > 2_000_000)
        {
            // Returns early when cancelled; the check below throws.
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromTicks((remainingNs - 1_500_000) / 100));
        }

        while (ElapsedNs(clock) < scheduledNs)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Thread.Yield();
        }
    }

    private static long ElapsedNs(Stopwatch clock) => (long)(clock.ElapsedTicks * (1e9 / Stopwatch.Frequency));

    /// <summary>Frames sent per burst before the loop looks at cancellation again.</summary>
    private const int BurstFrames = 4096;

    /// <summary>Frames the ring producer writes before it publishes them: the consumer's batch when it keeps up.</summary>
    private const int PublishFrames = 32;

    private enum Step
    {
        Continue,
        Done,
        TargetFull,
        TooEarly,
    }

    /// <summary>Where a replay is: the open file, the pending frame, the schedule. Used by one replay loop only.</summary>
    private sealed class ReplayState(string path) : IDisposable
    {
        public string Path { get; } = path;

        public Stopwatch Clock { get; } = Stopwatch.StartNew();

        /// <summary>The file of the current loop; null between loops.</summary>
        public CaptureFileReader? Reader { get; set; }

        public int Loop { get; set; }

        public long FirstTs { get; set; } = -1;

        public long LoopBaseNs { get; set; }

        public long LastScheduledNs { get; set; }

        /// <summary>The reader's current record is read but not sent yet.</summary>
        public bool HasPending { get; set; }

        /// <summary>When the pending frame is due, in ns from the start; 0 for now.</summary>
        public long PendingNs { get; set; }

        public long Sent { get; set; }

        public long Bits { get; set; }

        public void Dispose() => Reader?.Dispose();
    }
}
