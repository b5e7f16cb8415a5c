using System.Diagnostics;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Pcap;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>The replay loop in process: it waits on a full end instead of dropping, and it is fast with nothing behind it.</summary>
public sealed class CaptureReplayerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-replayer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task RunAsync_WhenTheEndIsFull_WaitsUntilItIsDrained_AndDropsNothing()
    {
        var file = Write(_dir, "in.pcap", Concat([PcapHeader(), .. Enumerable.Range(0, 10).Select(i => PcapRecord(0, 0, Frame((byte)i)))]));
        await using var end = new InMemoryWireEnd("target", capacity: 3);
        var progress = new ReplayProgress();
        var replay = CaptureReplayer.RunAsync(file, end, FramePool.Shared, new ReplayOptions { Pacing = ReplayPacing.TopSpeed }, progress, TestContext.Current.CancellationToken);

        var delivered = new List<byte[]>();
        while (delivered.Count < 10)
        {
            while (end.Queued < 3 && !replay.IsCompleted)
            {
                await Task.Yield();
            }

            Assert.Equal(replay.IsCompleted, delivered.Count + end.Queued == 10);
            delivered.AddRange(end.Deliver());
        }

        Assert.Null(await replay);
        Assert.Equal(0, end.Counters.TotalDrops);
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (byte)i), delivered.Select(f => f[^1]));
    }

    [Fact]
    public async Task RunAsync_IntoANullEnd_SendsEveryFrameOfEveryLoop()
    {
        const int Frames = 100_000;
        var record = PcapRecord(0, 0, Frame(7, 60));
        var bytes = new byte[24 + (record.Length * Frames)];
        PcapHeader().CopyTo(bytes, 0);
        for (var i = 0; i < Frames; i++)
        {
            record.CopyTo(bytes, 24 + (i * record.Length));
        }

        var file = Write(_dir, "64.pcap", bytes);
        var end = new NullEnd();
        var progress = new ReplayProgress();
        var clock = Stopwatch.StartNew();
        Assert.Null(await CaptureReplayer.RunAsync(file, end, FramePool.Shared, new ReplayOptions { Pacing = ReplayPacing.TopSpeed, Loops = 5 }, progress, TestContext.Current.CancellationToken));
        clock.Stop();

        Assert.Equal(5L * Frames, end.Frames);
        Assert.Equal(5L * Frames, progress.Frames);
        TestContext.Current.SendDiagnosticMessage($"in-process replay of 60-byte frames: {end.Frames / clock.Elapsed.TotalSeconds / 1e6:F2} M frames/s");
    }

    [Fact]
    public async Task RunAsync_IntoASmallRing_WaitsForTheConsumer_AndDeliversEveryFrameOfEveryLoopInOrder()
    {
        var file = Write(_dir, "in.pcap", Concat([PcapHeader(), .. Enumerable.Range(0, 1000).Select(i => PcapRecord(0, 0, Frame((byte)i, i % 100 == 5 ? 3000 : 60)))]));
        using var ring = new FrameRing(8, FramePool.Shared);
        var progress = new ReplayProgress();
        var replay = CaptureReplayer.RunAsync(file, ring, new ReplayOptions { Pacing = ReplayPacing.TopSpeed, Loops = 3 }, progress, TestContext.Current.CancellationToken);

        var delivered = await ConsumeAsync(ring);
        Assert.Null(await replay);
        Assert.Equal(3000, delivered.Count);
        Assert.Equal(Enumerable.Range(0, 3000).Select(i => (byte)(i % 1000)), delivered.Select(f => f[^1]));
        Assert.Equal(3000, progress.Frames);
        Assert.Equal(3L * ((10 * 3000) + (990 * 60)), progress.Bytes);
    }

    [Fact]
    public async Task RunAsync_IntoARing_BadRecord_ReturnsItsError_AfterTheFramesBeforeIt_AndCompletesTheRing()
    {
        var good = Enumerable.Range(0, 5).Select(i => PcapRecord(0, 0, Frame((byte)i)));
        var file = Write(_dir, "bad.pcap", Concat([PcapHeader(), .. good, PcapRecord(0, 0, Frame(9), capturedLength: 200)]));
        using var ring = new FrameRing(64, FramePool.Shared);
        var progress = new ReplayProgress();
        var replay = CaptureReplayer.RunAsync(file, ring, new ReplayOptions { Pacing = ReplayPacing.TopSpeed }, progress, TestContext.Current.CancellationToken);

        var delivered = await ConsumeAsync(ring);
        var error = await replay;
        Assert.NotNull(error);
        Assert.Contains("truncated record", error.Message, StringComparison.Ordinal);
        Assert.Equal([0, 1, 2, 3, 4], delivered.Select(f => f[^1]));
        Assert.True(ring.IsCompleted);
    }

    [Fact]
    public async Task RunAsync_IntoARing_CountsRuntsAndSnaplenCutFrames_AndSendsTheRest()
    {
        var file = Write(_dir, "skip.pcap", Concat([PcapHeader(), PcapRecord(0, 0, Frame(1)), PcapRecord(0, 0, new byte[10]), PcapRecord(0, 0, Frame(2), originalLength: 100), PcapRecord(0, 0, Frame(3))]));
        using var ring = new FrameRing(64, FramePool.Shared);
        var progress = new ReplayProgress();
        var replay = CaptureReplayer.RunAsync(file, ring, new ReplayOptions { Pacing = ReplayPacing.TopSpeed }, progress, TestContext.Current.CancellationToken);

        var delivered = await ConsumeAsync(ring);
        Assert.Null(await replay);
        Assert.Equal([1, 3], delivered.Select(f => f[^1]));
        Assert.Equal(1, progress.Skipped(ReplaySkipReason.Runt));
        Assert.Equal(1, progress.Skipped(ReplaySkipReason.Truncated));
    }

    [Fact]
    public async Task RunAsync_IntoARing_AtAFrameRate_SendsEveryFrame()
    {
        var file = Write(_dir, "paced.pcap", Concat([PcapHeader(), .. Enumerable.Range(0, 20).Select(i => PcapRecord(0, 0, Frame((byte)i)))]));
        using var ring = new FrameRing(64, FramePool.Shared);
        var progress = new ReplayProgress();
        var replay = CaptureReplayer.RunAsync(file, ring, new ReplayOptions { Pacing = ReplayPacing.FramesPerSecond, Rate = 1000 }, progress, TestContext.Current.CancellationToken);

        var delivered = await ConsumeAsync(ring);
        Assert.Null(await replay);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (byte)i), delivered.Select(f => f[^1]));
    }

    /// <summary>The ring's consumer on its own thread, a few frames at a time, until the ring completes.</summary>
    private static Task<List<byte[]>> ConsumeAsync(FrameRing ring) => Task.Factory.StartNew(
        () =>
        {
            var frames = new List<byte[]>();
            int count;
            while ((count = ring.WaitReadable(3, TestContext.Current.CancellationToken)) > 0)
            {
                for (var i = 0; i < count; i++)
                {
                    frames.Add(ring.Span(i).ToArray());
                }

                ring.Release(count);
            }

            return frames;
        },
        TestContext.Current.CancellationToken,
        TaskCreationOptions.LongRunning,
        TaskScheduler.Default);

    /// <summary>An end that takes every frame and returns it at once: the replay loop's own cost.</summary>
    private sealed class NullEnd : INetWire
    {
        public long Frames { get; private set; }

        public NetWireInterface Interface => NetWireInterface.Current;

        public string Name => "null";

        public System.Net.IPAddress? GuestIp => null;

        public bool CanSendPacket => true;

        public void SendPacket(Frame frame)
        {
            Frames++;
            frame.Dispose();
        }

        public ValueTask WaitCanSendPacketAsync(CancellationToken cancellationToken) => default;
    }
}
