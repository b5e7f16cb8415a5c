using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices;
using NetWire.Devices.Pcap;

namespace NetWire.Cli.Commands;

/// <summary><c>netwire replay FILE --into SPEC</c>: plays a pcap or pcapng file into a wire end.</summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "A pcap (micro- or nanosecond) or pcapng file with Ethernet frames" };
        var into = new Option<string>("--into")
        {
            Description = $"Where the frames go: a guest spec, {WireSpec.GuestForms} (use ',connect' for a running appliance's guest socket), or a host spec, {WireSpec.HostForms}, or null (count and discard: measures the replay alone)",
            HelpName = "SPEC",
            Required = true,
        };
        var speed = new Option<string>("--speed") { Description = "original: honour the capture's timestamps (the default)", HelpName = "original" };
        var multiplier = new Option<double?>("--multiplier") { Description = "Honour timestamps, with time running X times faster", HelpName = "X" };
        var pps = new Option<double?>("--pps") { Description = "Send N frames per second", HelpName = "N" };
        var mbps = new Option<double?>("--mbps") { Description = "Send N megabits (10^6) of frames per second", HelpName = "N" };
        var topSpeed = new Option<bool>("--topspeed") { Description = "Send as fast as the target takes frames" };
        var loop = new Option<int>("--loop") { Description = "Play the file N times", DefaultValueFactory = _ => 1, HelpName = "N" };
        var limit = new Option<long>("--limit") { Description = "Stop after N frames in total", HelpName = "N" };
        var keepGoing = new Option<bool>("--keep-going") { Description = "On a bad record, replay the frames before it, then report it (exit code 2 still)" };
        var queue = new Option<int?>("--queue-frames")
        {
            Description = $"Frames the target may hold queued before the replay waits (default {WireEnd.DefaultQueueCapacity}; {FrameRing.DefaultCapacity} into null or pcap, which take them from a ring of {FrameRing.SlotBytes}-byte slots)",
            HelpName = "N",
        };
        var logLevel = BridgeCommand.LogLevelOption();
        var command = new Command("replay", "Replay a capture file into a wire end, paced by its timestamps or a rate, waiting whenever the target is full (never dropping).")
        {
            file, into, speed, multiplier, pps, mbps, topSpeed, loop, limit, keepGoing, queue, logLevel,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var modes = (parse.GetValue(multiplier) is null ? 0 : 1) + (parse.GetValue(pps) is null ? 0 : 1) + (parse.GetValue(mbps) is null ? 0 : 1) + (parse.GetValue(topSpeed) ? 1 : 0);
            ReplayOptions options;
            string? problem = null;
            if (parse.GetValue(speed) is { } text && text != "original")
            {
                problem = $"--speed takes only 'original'; use --multiplier, --pps, --mbps or --topspeed";
            }

            if (modes > 1)
            {
                problem = "--multiplier, --pps, --mbps and --topspeed exclude each other";
            }

            options = new ReplayOptions
            {
                Pacing = parse.GetValue(pps) is not null ? ReplayPacing.FramesPerSecond
                    : parse.GetValue(mbps) is not null ? ReplayPacing.Megabits
                    : parse.GetValue(topSpeed) ? ReplayPacing.TopSpeed
                    : ReplayPacing.Original,
                Multiplier = parse.GetValue(multiplier) ?? 1,
                Rate = parse.GetValue(pps) ?? parse.GetValue(mbps) ?? 0,
                Loops = parse.GetValue(loop),
                Limit = parse.GetValue(limit),
            };
            if (options.Multiplier <= 0 || (options.Pacing is ReplayPacing.FramesPerSecond or ReplayPacing.Megabits && options.Rate <= 0) || options.Loops < 1 || options.Limit < 0 || parse.GetValue(queue) is < 1)
            {
                problem ??= "--multiplier, --pps, --mbps, --loop and --queue-frames must be positive, --limit not negative";
            }

            return RunAsync(parse.GetValue(file)!, parse.GetValue(into)!, options, problem, parse.GetValue(keepGoing), parse.GetValue(queue), parse.GetValue(logLevel), cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(string path, string intoText, ReplayOptions options, string? problem, bool keepGoing, int? queueFrames, LogLevel level, CancellationToken cancellationToken)
    {
        WireSpec? spec;
        try
        {
            if (problem is not null)
            {
                throw new FormatException(problem);
            }

            var kind = intoText.Split(':', 2)[0];
            spec = intoText == "null" ? null : WireSpec.Parse(intoText, kind is "tap" or "pcap" ? WireSide.Host : WireSide.Guest);
        }
        catch (FormatException ex)
        {
            await Console.Error.WriteLineAsync($"netwire replay: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        long framesInFile;
        try
        {
            // Without --keep-going a bad file sends nothing: read it through once first.
            framesInFile = keepGoing ? -1 : CaptureReplayer.Validate(path);
            if (keepGoing)
            {
                CaptureFileReader.Open(path).Dispose();
            }
        }
        catch (CaptureFormatException ex)
        {
            await Console.Error.WriteLineAsync($"netwire replay: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            await Console.Error.WriteLineAsync($"netwire replay: cannot read '{path}': {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        using var loggers = Logging.Create(level);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);

        // A null or pcap end takes the frames from a ring the replay fills on its own thread; the
        // others through SendPacket (docs/performance.md, "Replay").
        using var ring = spec is null or { Kind: "pcap" } ? new FrameRing(queueFrames ?? FrameRing.DefaultCapacity, FramePool.Shared) : null;
        var queue = queueFrames ?? WireEnd.DefaultQueueCapacity;
        var end = spec switch
        {
            null => new NullEnd("replay", FramePool.Shared, queue) { Ring = ring },
            { Kind: "pcap" } => new PcapLiveEnd("replay", spec.Interface!, spec.Filter, FramePool.Shared, queue, loggers.CreateLogger<PcapLiveEnd>()) { SendOnly = true, Ring = ring },
            _ => spec.CreateEnd("replay", FramePool.Shared, queue, loggers),
        };
        using var endStop = new CancellationTokenSource();
        var running = end.RunAsync(new Discard(), endStop.Token);
        var progress = new ReplayProgress();
        var total = framesInFile < 0 ? -1 : framesInFile * options.Loops;
        if (options.Limit > 0)
        {
            total = total < 0 ? options.Limit : Math.Min(total, options.Limit);
        }

        var clock = Stopwatch.StartNew();
        var exitCode = ExitCodes.Ok;
        CaptureFormatException? badRecord = null;
        Task<CaptureFormatException?>? replay = null;
        try
        {
            replay = ring is null
                ? CaptureReplayer.RunAsync(path, end, FramePool.Shared, options, progress, stop.Token)
                : CaptureReplayer.RunAsync(path, ring, options, progress, stop.Token);
            var reporter = ReportProgressAsync(progress, total, clock, replay);
            var first = await Task.WhenAny(replay, running).ConfigureAwait(false);
            if (first == running)
            {
                await running.ConfigureAwait(false);
                throw new IOException($"{end.Description} stopped before the replay finished");
            }

            badRecord = await replay.ConfigureAwait(false);
            await reporter.ConfigureAwait(false);

            // Let the end write what it holds before it is closed. A ring's slot is released only
            // after its frame was written; a queue's frame is taken before, hence the grace period.
            var drainDeadline = Stopwatch.StartNew();
            while ((ring?.Count ?? end.QueuedFrames) > 0 && !running.IsCompleted && drainDeadline.Elapsed < TimeSpan.FromSeconds(10))
            {
                await Task.Delay(ring is null ? 5 : 1, CancellationToken.None).ConfigureAwait(false);
            }

            if (ring is null)
            {
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        catch (WireSetupException ex)
        {
            await Console.Error.WriteLineAsync($"netwire replay: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Setup;
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex))
        {
            await Console.Error.WriteLineAsync($"netwire replay: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Failure;
        }
        finally
        {
            var elapsed = clock.Elapsed;
            await endStop.CancelAsync().ConfigureAwait(false);
            try
            {
                await running.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WireSetupException || IoErrors.IsIoFailure(ex))
            {
            }

            if (ring is not null && replay is { IsCompleted: false })
            {
                // The end stopped under a waiting producer: stop it before the ring's memory goes.
                await stop.CancelAsync().ConfigureAwait(false);
                try
                {
                    await replay.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }

            await end.DisposeAsync().ConfigureAwait(false);
            await Console.Error.WriteAsync(Summary(progress, end, elapsed)).ConfigureAwait(false);
        }

        if (badRecord is not null)
        {
            await Console.Error.WriteLineAsync($"netwire replay: {badRecord.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        return exitCode;
    }

    private static async Task ReportProgressAsync(ReplayProgress progress, long total, Stopwatch clock, Task replay)
    {
        var terminal = !Console.IsErrorRedirected;
        var period = TimeSpan.FromMilliseconds(terminal ? 250 : 1000);
        while (!replay.IsCompleted)
        {
            await Task.WhenAny(replay, Task.Delay(period)).ConfigureAwait(false);
            if (replay.IsCompleted)
            {
                break;
            }

            var seconds = Math.Max(clock.Elapsed.TotalSeconds, 1e-3);
            var frames = progress.Frames;
            var rate = frames / seconds;
            var line = string.Create(CultureInfo.InvariantCulture, $"{frames} frames, {progress.Bytes * 8 / seconds / 1e6:F1} Mbit/s, {rate:F0} frames/s");
            if (total > 0)
            {
                var width = 30;
                var done = (int)(width * Math.Min(1.0, (double)frames / total));
                line = string.Create(CultureInfo.InvariantCulture, $"[{new string('#', done)}{new string('.', width - done)}] {100.0 * frames / total:F0}% {line}, ETA {Eta(total - frames, rate)}");
            }

            await Console.Error.WriteAsync(terminal ? "\r" + line + "\u001b[K" : line + Environment.NewLine).ConfigureAwait(false);
        }

        if (terminal)
        {
            await Console.Error.WriteAsync("\r\u001b[K").ConfigureAwait(false);
        }
    }

    /// <summary>Time left at the rate so far, as H:MM:SS (hours beyond 24 kept); unknown before the first frame.</summary>
    internal static string Eta(long framesLeft, double rate)
    {
        if (rate <= 0 || double.IsNaN(rate))
        {
            return "--:--:--";
        }

        var seconds = (long)Math.Ceiling(Math.Max(0, framesLeft) / rate);
        return string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600}:{seconds / 60 % 60:00}:{seconds % 60:00}");
    }

    private static string Summary(ReplayProgress progress, WireEnd end, TimeSpan elapsed)
    {
        var seconds = Math.Max(elapsed.TotalSeconds, 1e-6);
        var skipped = string.Join(", ", Enum.GetValues<ReplaySkipReason>().Where(r => progress.Skipped(r) > 0).Select(r => $"{progress.Skipped(r)} {SkipText(r)}"));
        return string.Create(
            CultureInfo.InvariantCulture,
            $"""
            replayed into {end.Description}
              sent      {progress.Frames} frames, {progress.Bytes} bytes
              delivered {end.Counters.TxFrames} frames, dropped {end.Counters.TotalDrops}
              elapsed   {seconds:F3} s
              rate      {progress.Frames / seconds:F0} frames/s, {progress.Bytes * 8 / seconds / 1e6:F2} Mbit/s
              skipped   {(skipped.Length == 0 ? "0" : skipped)}

            """);
    }

    private static string SkipText(ReplaySkipReason reason) => reason switch
    {
        ReplaySkipReason.Runt => "shorter than an Ethernet header",
        ReplaySkipReason.TooLong => $"longer than {FramePool.MaxFrameLength} bytes",
        ReplaySkipReason.Truncated => "cut short by the capture's snaplen",
        _ => reason.ToString(),
    };

    /// <summary>Frames the target produces while it is replayed into (a guest answering, the kernel's traffic) are counted and returned.</summary>
    private sealed class Discard : IPacketReceiver
    {
        public bool CanRecvPacket => true;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

        public void RecvPacket(Frame frame) => frame.Dispose();
    }
}
