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
