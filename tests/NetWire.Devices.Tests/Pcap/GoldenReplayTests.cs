using NetWire.Core.Packets;
using NetWire.Devices.Pcap;
using NetWire.Devices.Tests.Host;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>
/// Golden replays: the guest's frames of a capture in captures/ (inbound in epb_flags) are
/// replayed with <c>netwire replay</c> into a real <c>netwire bridge --host gateway</c>, and what
/// the gateway sends back, as the bridge's own capture records it, must equal the capture's
/// outbound frames frame by frame. Timestamps are ignored; the IPv4 identification and header
/// checksum are normalised (captures/README.md says why).
/// </summary>
public sealed class GoldenReplayTests : IDisposable
{
    private const uint Inbound = 1;
    private const uint Outbound = 2;

    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-golden-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("guest-dhcp.pcapng")]
    [InlineData("guest-arp.pcapng")]
    [InlineData("guest-icmp.pcapng")]
    public async Task ReplayedGuestFrames_GetTheRecordedAnswers(string name)
    {
        var golden = ReadFrames(Path.Combine(RepoPaths.Root, "captures", name));
        var fromGuest = golden.Where(f => f.Direction == Inbound).Select(f => f.Data).ToArray();
        var expected = golden.Where(f => f.Direction == Outbound).Select(f => Normalised(f.Data)).ToArray();
        Assert.NotEmpty(fromGuest);
        Assert.NotEmpty(expected);

        var input = Write(_dir, "in.pcap", Concat([PcapHeader(), .. fromGuest.Select((f, i) => PcapRecord((uint)i, 0, f))]));
        var socket = Path.Combine(_dir, "g.sock");
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{socket}", "gateway", null, _dir);
        await bridge.WaitForLogAsync("Attach a QEMU guest", TimeSpan.FromSeconds(60));

        var replay = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "replay", input, "--into", $"stream:unix:{socket},connect", "--topspeed"], TimeSpan.FromSeconds(120));
        Assert.True(replay.ExitCode == 0, replay.Stderr);

        var total = fromGuest.Length + expected.Length;
        await bridge.WaitForStatusAsync(s => s.GetProperty("capture").GetProperty("frames").GetInt64() >= total, TimeSpan.FromSeconds(60));
        var status = await bridge.StopAsync();

        var recorded = ReadFrames(bridge.CapturePath);
        Assert.Equal(fromGuest.Select(Convert.ToHexString), recorded.Where(f => f.Direction == Inbound).Select(f => Convert.ToHexString(f.Data)));
        var answers = recorded.Where(f => f.Direction == Outbound).Select(f => Normalised(f.Data)).ToArray();
        Assert.Equal(expected.Length, answers.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(expected[i] == answers[i], $"{name}: answer {i + 1} of {expected.Length} differs\nexpected {expected[i]}\nactual   {answers[i]}");
        }

        Assert.Equal(total, status.GetProperty("capture").GetProperty("frames").GetInt64());
    }

    /// <summary>Every frame of a pcap/pcapng file with its epb_flags direction.</summary>
    private static List<(uint Direction, byte[] Data)> ReadFrames(string path)
    {
        var frames = new List<(uint, byte[])>();
        using var reader = CaptureFileReader.Open(path);
        while (reader.TryReadNext(out var record))
        {
            frames.Add((record.Flags & 3, reader.Data.ToArray()));
        }

        return frames;
    }

    /// <summary>
    /// Hex of the frame with the IPv4 identification zeroed and the header checksum recomputed
    /// for it: the gateway numbers its datagrams from 0 in each run, and each file is cut from a
    /// longer session. The checksum as sent must have been right.
    /// </summary>
    private static string Normalised(byte[] frame)
    {
        var copy = (byte[])frame.Clone();
        if (EthernetFrame.TryParse(copy, out var ethernet) && ethernet.EtherType == EtherType.Ipv4)
        {
            Assert.True(Ipv4Packet.TryParse(ethernet.Payload, out var ip) && ip.IsHeaderChecksumValid, "a whole IPv4 packet with a valid header checksum");
            Assert.Equal(Ipv4Packet.MinHeaderLength, ip.HeaderLength);
            Assert.True(Ipv4Header.TryParse(ethernet.Payload, out var header));
            (header with { Identification = 0 }).WriteTo(copy.AsSpan(EthernetFrame.HeaderLength));
        }

        return Convert.ToHexString(copy);
    }
}
