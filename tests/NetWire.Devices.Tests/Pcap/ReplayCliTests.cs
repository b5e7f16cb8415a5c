using System.Buffers.Binary;
using System.Net.Sockets;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary><c>netwire replay</c> into a guest socket: every frame arrives, in order, even when the reader is slow; bad files exit 2.</summary>
public sealed class ReplayCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-replay-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task NotATerminal_PrintsPlainProgressLinesWithRateAndEta()
    {
        // 800 frames at 160/s: 5 s, so at least two once-a-second lines on the redirected stderr
        // even when a busy machine delays the start and the first ticks (2.5 s was too tight for that).
        var file = Write(_dir, "in.pcap", Concat([PcapHeader(), .. Enumerable.Range(0, 800).Select(i => PcapRecord((uint)i, 0, Frame((byte)i)))]));
        var result = await NetwireAsync("replay", file, "--into", "null", "--pps", "160");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var lines = result.Stderr.Split('\n').Where(l => l.StartsWith('[')).ToArray();
        Assert.True(lines.Length >= 2, result.Stderr);
        Assert.DoesNotContain('\r', result.Stderr);
        var percents = new List<int>();
        foreach (var line in lines)
        {
            var match = System.Text.RegularExpressions.Regex.Match(line, @"^\[[#.]{30}\] (\d+)% (\d+) frames, [0-9.]+ Mbit/s, (\d+) frames/s, ETA \d+:\d\d:\d\d$");
            Assert.True(match.Success, line);
            percents.Add(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.Equal(percents.Order(), percents);
        Assert.Contains("sent      800 frames", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TopSpeedIntoASlowGuestSocket_WaitsAndDeliversEveryFrameInOrder()
    {
        const int Frames = 300;
        var records = Enumerable.Range(0, Frames).Select(i => PcapRecord((uint)i, 0, Frame((byte)i, 60 + (i % 7)))).ToArray();
        var file = Write(_dir, "in.pcap", Concat([PcapHeader(), .. records]));
        var socketPath = Path.Combine(_dir, "g.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);

        var replay = NetwireAsync("replay", file, "--into", $"stream:unix:{socketPath},connect", "--topspeed", "--queue-frames", "4");
        using var peer = await listener.AcceptAsync(TestContext.Current.CancellationToken);
        peer.ReceiveBufferSize = 4096;

        // A reader that stalls at first: the replay has to wait, not drop.
        await Task.Delay(700, TestContext.Current.CancellationToken);
        var received = new List<byte[]>();
        var header = new byte[4];
        while (received.Count < Frames)
        {
            await peer.ReceiveAsync(header.AsMemory(), SocketFlags.None, TestContext.Current.CancellationToken).AsTask();
            var frame = new byte[BinaryPrimitives.ReadInt32BigEndian(header)];
            var got = 0;
            while (got < frame.Length)
            {
                got += await peer.ReceiveAsync(frame.AsMemory(got), SocketFlags.None, TestContext.Current.CancellationToken);
            }

            received.Add(frame);
        }

        var result = await replay;
        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"sent      {Frames} frames", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("dropped 0", result.Stderr, StringComparison.Ordinal);
        for (var i = 0; i < Frames; i++)
        {
            Assert.Equal(Frame((byte)i, 60 + (i % 7)), received[i]);
        }
    }

    [Fact]
    public async Task BadRecord_ExitsWithUsageCode_NamingFileRecordAndOffset_AndSendsNothing()
    {
        var file = Write(_dir, "bad.pcap", Concat(PcapHeader(), PcapRecord(0, 0, Frame(1)), PcapRecord(0, 0, [])));
        var result = await NetwireAsync("replay", file, "--into", $"stream:unix:{_dir}/none.sock,connect", "--topspeed");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{file}: record 2 at byte offset 100: zero-length record", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("replayed into", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BadRecord_WithKeepGoing_SendsTheFramesBeforeIt()
    {
        var file = Write(_dir, "bad.pcap", Concat(PcapHeader(), PcapRecord(0, 0, Frame(1)), PcapRecord(0, 0, Frame(2)), PcapRecord(0, 0, Frame(3), capturedLength: 400_000)));
        var socketPath = Path.Combine(_dir, "k.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        var replay = NetwireAsync("replay", file, "--into", $"stream:unix:{socketPath},connect", "--topspeed", "--keep-going");
        using var peer = await listener.AcceptAsync(TestContext.Current.CancellationToken);
        var result = await replay;
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("sent      2 frames", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("record 3 at byte offset 176", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("wrongmagic")]
    [InlineData("missing")]
    public async Task UnreadableFile_ExitsWithUsageCode(string kind)
    {
        var file = kind == "missing" ? Path.Combine(_dir, "nope.pcap") : Write(_dir, "w.pcap", new byte[40]);
        var result = await NetwireAsync("replay", file, "--into", "tap:nw0", "--topspeed");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(file, result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConflictingPacing_IsAUsageError()
    {
        var result = await NetwireAsync("replay", "x.pcap", "--into", "tap:nw0", "--pps", "10", "--topspeed");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("exclude each other", result.Stderr, StringComparison.Ordinal);
    }
}
