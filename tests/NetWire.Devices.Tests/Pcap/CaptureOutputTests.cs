using System.Buffers.Binary;
using NetWire.Core.Packets;
using NetWire.Devices.Tests.Host;
using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>
/// <c>--capture</c> to a FIFO read live by the real tshark, a reader that goes away, size
/// rotation and <c>--snaplen</c>, on a real <c>netwire bridge</c> whose host end is the user-mode
/// gateway (it answers ARP for 10.0.2.2, so frames cross both ways).
/// </summary>
public sealed class CaptureOutputTests : IDisposable
{
    private static readonly MacAddress s_guestMac = new(0x5254_0012_3456);

    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-capture-").FullName;

    private string GuestSocket => Path.Combine(_dir, "g.sock");

    private string CapturePath => Path.Combine(_dir, "capture.pcapng");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task FifoReadByTshark_DecodesFramesWhileTheyFlow()
    {
        HostRequirements.RequireCommand("tshark");
        await MakeFifoAsync(CapturePath);

        // 'tshark -r -' on the FIFO, exec'd so the pid is tshark's; -l prints each frame as it is read.
        await using var tshark = ProcessRunner.Start("sh", ["-c", $"exec tshark -l -n -r - -T fields -e arp.opcode -e arp.src.hw_mac < '{CapturePath}'"]);
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{GuestSocket}", "gateway", null, _dir);
        using var guest = await ConnectGuestAsync(bridge);

        const int Requests = 20;
        for (var i = 0; i < Requests; i++)
        {
            await guest.SendFrameAsync(ArpRequest(i));
            Assert.Equal(2, await ReceiveArpReplyAsync(guest));
        }

        // The bridge still runs: tshark must have decoded every request and reply already.
        await tshark.WaitForLineAsync(_ => ArpLines(tshark).Count(l => l.StartsWith("2\t", StringComparison.Ordinal)) >= Requests, TimeSpan.FromSeconds(60));
        Assert.False(bridge.Process.HasExited);
        var lines = ArpLines(tshark);
        Assert.Equal(Enumerable.Range(0, Requests).Select(i => $"1\t52:54:00:12:34:{i:x2}"), lines.Where(l => l.StartsWith("1\t", StringComparison.Ordinal)));
        Assert.Equal(Requests, lines.Count(l => l.StartsWith("2\t", StringComparison.Ordinal)));

        var status = await bridge.StopAsync();
        Assert.Equal(0, await tshark.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        var capture = status.GetProperty("capture");
        Assert.Equal(0, capture.GetProperty("dropped").GetInt64());
        Assert.True(capture.GetProperty("frames").GetInt64() >= 2 * Requests);
    }

    [Fact]
    public async Task FifoReaderThatGoesAway_CostsCountedCaptureDrops_TheWireKeepsWorking()
    {
        HostRequirements.RequireCommand("tshark");
        await MakeFifoAsync(CapturePath);

        // A reader that takes the section header and a little more, then closes the FIFO.
        await using var reader = ProcessRunner.Start("sh", ["-c", $"exec head -c 300 < '{CapturePath}' > /dev/null"]);
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{GuestSocket}", "gateway", null, _dir);
        using var guest = await ConnectGuestAsync(bridge);

        // Every request still gets its reply, before and after the reader leaves; the capture counts what it could not write.
        const int Requests = 200;
        for (var i = 0; i < Requests; i++)
        {
            await guest.SendFrameAsync(ArpRequest(i));
            Assert.Equal(2, await ReceiveArpReplyAsync(guest));
            if (i == 19)
            {
                Assert.Equal(0, await reader.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            }
        }

        var running = await bridge.WaitForStatusAsync(s => s.GetProperty("capture").GetProperty("dropped").GetInt64() > 0, TimeSpan.FromSeconds(60));
        Assert.True(running.GetProperty("capture").TryGetProperty("error", out _), running.ToString());
        var status = await bridge.StopAsync();
        var capture = status.GetProperty("capture");
        Assert.Equal(2 * Requests, capture.GetProperty("frames").GetInt64() + capture.GetProperty("dropped").GetInt64());
        Assert.Equal(Requests, BridgeProcess.End(status, "guest").GetProperty("tx_frames").GetInt64());
    }

    [Fact]
    public async Task Rotation_FilesStayUnderTheLimit_TsharkReadsEach_CountsSumToTheTotal()
    {
        HostRequirements.RequireCommand("tshark");
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{GuestSocket}", "gateway", null, _dir, "--capture-max-mb", "1");
        using var guest = await ConnectGuestAsync(bridge);

        // 2500 full-size frames (an experimental EtherType the gateway ignores): about 3.9 MB of pcapng.
        const int Frames = 2500;
        for (var i = 0; i < Frames; i++)
        {
            await guest.SendFrameAsync(StreamClient.Frame(1514, i));
        }

        await bridge.WaitForStatusAsync(s => BridgeProcess.End(s, "guest").GetProperty("rx_frames").GetInt64() >= Frames, TimeSpan.FromSeconds(120));
        var status = await bridge.StopAsync();
        var capture = status.GetProperty("capture");
        Assert.Equal(0, capture.GetProperty("dropped").GetInt64());

        var files = Enumerable.Range(0, capture.GetProperty("files").GetInt32()).Select(i => Path.Combine(_dir, i == 0 ? "capture.pcapng" : $"capture.{i}.pcapng")).ToArray();
        Assert.True(files.Length >= 4, $"{files.Length} files");
        Assert.False(File.Exists(Path.Combine(_dir, $"capture.{files.Length}.pcapng")));
        var total = 0;
        var seqs = new List<int>();
        foreach (var file in files)
        {
            Assert.InRange(new FileInfo(file).Length, 1, 1_000_000);
            var lines = await Tshark.FieldsAsync(file, null, "frame.number", "eth.type", "eth.src");
            Assert.NotEmpty(lines);
            total += lines.Length;
            seqs.AddRange(lines.Where(l => l.Contains("\t0x88b5\t", StringComparison.Ordinal)).Select(l => SeqOfMac(l.Split('\t')[2])));
        }

        Assert.Equal(capture.GetProperty("frames").GetInt64(), total);
        Assert.Equal(Enumerable.Range(0, Frames), seqs);
    }

    [Fact]
    public async Task SnapLength_TsharkSeesTheCutLengthAndTheOriginalLength()
    {
        HostRequirements.RequireCommand("tshark");
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{GuestSocket}", "gateway", null, _dir, "--snaplen", "100");
        using var guest = await ConnectGuestAsync(bridge);
        for (var i = 0; i < 10; i++)
        {
            await guest.SendFrameAsync(StreamClient.Frame(1514, i));
        }

        await guest.SendFrameAsync(ArpRequest(0));
        Assert.Equal(2, await ReceiveArpReplyAsync(guest));
        await bridge.WaitForStatusAsync(s => BridgeProcess.End(s, "guest").GetProperty("rx_frames").GetInt64() >= 11, TimeSpan.FromSeconds(60));
        var status = await bridge.StopAsync();
        Assert.Equal(10, status.GetProperty("capture").GetProperty("truncated").GetInt64());

        var cut = await Tshark.FieldsAsync(CapturePath, "eth.type == 0x88b5", "frame.cap_len", "frame.len");
        Assert.Equal(Enumerable.Repeat("100\t1514", 10), cut);

        // Frames under the snap length are kept whole (the ARP request is 42 bytes, its reply too).
        var arp = await Tshark.FieldsAsync(CapturePath, "arp", "frame.cap_len", "frame.len", "arp.opcode");
        Assert.Equal(["42\t42\t1", "42\t42\t2"], arp);
    }

    [Fact]
    public async Task BadCaptureOptions_AreUsageErrors()
    {
        async Task<string> FailsAsync(int code, params string[] extra)
        {
            var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "bridge", "--guest", $"stream:unix:{GuestSocket}", "--host", "gateway", .. extra], TimeSpan.FromSeconds(60));
            Assert.True(code == result.ExitCode, result.Stderr);
            return result.Stderr;
        }

        Assert.Contains("--snaplen must be 1 to 262144", await FailsAsync(2, "--capture", CapturePath, "--snaplen", "0"), StringComparison.Ordinal);
        Assert.Contains("need --capture", await FailsAsync(2, "--snaplen", "64"), StringComparison.Ordinal);
        Assert.Contains("--capture-max-mb must be at least", await FailsAsync(2, "--capture", CapturePath, "--capture-max-mb", "0.01"), StringComparison.Ordinal);
        Assert.Contains("not standard output", await FailsAsync(2, "--capture", "-", "--capture-max-mb", "5"), StringComparison.Ordinal);
        Assert.Contains("cannot write capture", await FailsAsync(3, "--capture", Path.Combine(_dir, "no", "such", "dir.pcapng")), StringComparison.Ordinal);

        // serve and run take the same options from the same class.
        foreach (var verb in (string[])["serve", "run"])
        {
            var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, verb, "--capture", "-", "--capture-max-mb", "5", .. verb == "run" ? (string[])["--", "true"] : []], TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 2, $"{verb}: {result.ExitCode} {result.Stderr}");
            Assert.Contains("not standard output", result.Stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>An ARP request for 10.0.2.2 from 10.0.2.15, its sender MAC ending in <paramref name="n"/>.</summary>
    private static byte[] ArpRequest(int n)
    {
        var frame = new byte[EthernetFrame.HeaderLength + ArpPacket.Length];
        var mac = new MacAddress((s_guestMac.ToUInt64() & ~0xffUL) | (byte)n);
        new EthernetHeader(MacAddress.Broadcast, mac, EtherType.Arp).WriteTo(frame);
        new ArpHeader(ArpOperation.Request, mac, 0x0A00020F, default, 0x0A000202).WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    /// <summary>Reads frames from the gateway until an ARP one; returns its opcode.</summary>
    private static async Task<int> ReceiveArpReplyAsync(StreamClient guest)
    {
        while (true)
        {
            var frame = await guest.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
            Assert.NotNull(frame);
            if (EthernetFrame.TryParse(frame, out var ethernet) && ethernet.EtherType == EtherType.Arp)
            {
                Assert.True(ArpPacket.TryParse(ethernet.Payload, out var arp), "an Ethernet/IPv4 ARP packet");
                return (int)arp.Operation;
            }
        }
    }

    private static string[] ArpLines(ManagedProcess tshark) =>
        [.. tshark.StdoutLines.Where(l => l.Length > 0 && char.IsDigit(l[0]))];

    /// <summary>The sequence number <see cref="StreamClient.Frame"/> puts in the first four bytes of the source MAC.</summary>
    private static int SeqOfMac(string mac) =>
        BinaryPrimitives.ReadInt32BigEndian(Convert.FromHexString(mac.Replace(":", string.Empty, StringComparison.Ordinal)));

    /// <summary>Connects once the bridge listens (it says "Bridge up" a moment before its socket is bound).</summary>
    private async Task<StreamClient> ConnectGuestAsync(BridgeProcess bridge)
    {
        await bridge.WaitForLogAsync("Attach a QEMU guest", TimeSpan.FromSeconds(60));
        return await StreamClient.ConnectAsync(GuestSocket);
    }

    private static async Task MakeFifoAsync(string path)
    {
        var result = await ProcessRunner.RunAsync("mkfifo", [path], TimeSpan.FromSeconds(30));
        Assert.True(result.ExitCode == 0, result.Stderr);
    }
}
