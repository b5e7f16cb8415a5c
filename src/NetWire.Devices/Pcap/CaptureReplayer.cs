using System.Diagnostics;
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
        var clock = Stopwatch.StartNew();
        long loopBaseNs = 0;
        long lastScheduledNs = 0;
        long sent = 0;
        long bits = 0;
        for (var loop = 0; loop < options.Loops; loop++)
        {
            using var reader = CaptureFileReader.Open(path);
            long firstTs = -1;
            try
            {
                while (reader.TryReadNext(out var record))
                {
                    if (options.Limit > 0 && sent >= options.Limit)
                    {
                        return null;
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

                    if (firstTs < 0)
                    {
                        firstTs = record.TimestampNs;
                    }

                    var scheduledNs = options.Pacing switch
                    {
                        ReplayPacing.Original => loopBaseNs + (long)((record.TimestampNs - firstTs) / options.Multiplier),
                        ReplayPacing.FramesPerSecond => (long)(sent * 1e9 / options.Rate),
                        ReplayPacing.Megabits => (long)(bits * 1e3 / options.Rate),
                        _ => 0,
                    };
                    scheduledNs = Math.Max(scheduledNs, lastScheduledNs);
                    lastScheduledNs = scheduledNs;
                    if (scheduledNs > 0)
                    {
                        await WaitUntilAsync(clock, scheduledNs, cancellationToken).ConfigureAwait(false);
                    }

                    while (!target.CanSendPacket)
                    {
                        await target.WaitCanSendPacketAsync(cancellationToken).ConfigureAwait(false);
                    }

                    var frame = pool.Rent(reader.Data);
                    target.SendPacket(frame);
                    progress.Sent(length);
                    sent++;
                    bits += length * 8L;
                }
            }
            catch (CaptureFormatException ex)
            {
                return ex;
            }

            loopBaseNs = lastScheduledNs;
        }

        return null;
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

    private static long ElapsedNs(Stopwatch clock) => (long)(clock.ElapsedTicks * (1e9 / Stopwatch.Frequency));
}
