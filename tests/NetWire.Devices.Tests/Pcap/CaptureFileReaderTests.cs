using NetWire.Devices.Pcap;
using NetWire.Testing;
using SharpPcap.LibPcap;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>Valid pcap and pcapng files read back frame for frame, with their timestamps.</summary>
public sealed class CaptureFileReaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-reader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Pcap_MicroAndNano_BothByteOrders_ReadsFramesAndTimestamps(bool nano, bool bigEndian)
    {
        var path = Write(_dir, "a.pcap", Concat(
            PcapHeader(nano, bigEndian: bigEndian),
            PcapRecord(10, nano ? 5u : 5u, Frame(1), bigEndian: bigEndian),
            PcapRecord(11, 7, Frame(2, 1514), bigEndian: bigEndian)));
        using var reader = CaptureFileReader.Open(path);

        Assert.Equal(nano ? CaptureFileFormat.PcapNanoseconds : CaptureFileFormat.PcapMicroseconds, reader.Format);
        Assert.True(reader.TryReadNext(out var first));
        Assert.Equal(1, first.Number);
        Assert.Equal(24, first.Offset);
        Assert.Equal((10 * 1_000_000_000L) + (nano ? 5 : 5000), first.TimestampNs);
        Assert.Equal(1, reader.Data[^1]);
        Assert.True(reader.TryReadNext(out var second));
        Assert.Equal(1514, second.CapturedLength);
        Assert.Equal(2, reader.Data[^1]);
        Assert.False(reader.TryReadNext(out _));
    }

    [Fact]
    public void PcapNg_SeveralInterfacesAndResolutions_ReadsEveryPacket()
    {
        var path = Write(_dir, "a.pcapng", Concat(
            SectionHeader(),
            Interface(),
            Interface(tsresol: 9),
            EnhancedPacket(0, 2_000_000, Frame(1)),
            EnhancedPacket(1, 3_000_000_123, Frame(2, 61)),
            EnhancedPacket(0, 2_000_001, Frame(3))));
        using var reader = CaptureFileReader.Open(path);

        Assert.Equal(CaptureFileFormat.PcapNg, reader.Format);
        var seen = new List<(int Interface, long Ns, byte Tag, int Length)>();
        while (reader.TryReadNext(out var record))
        {
            seen.Add((record.Interface, record.TimestampNs, reader.Data[^1], record.CapturedLength));
        }

        Assert.Equal(
            [(0, 2_000_000_000L, (byte)1, 60), (1, 3_000_000_123L, (byte)2, 61), (0, 2_000_001_000L, (byte)3, 60)],
            seen);
        Assert.Equal(2, reader.Interfaces.Count);
    }

    [Fact]
    public void RealCapture_MatchesLibpcapFrameForFrame()
    {
        var path = Path.Combine(RepoPaths.Root, "captures", "bridge-qemu-stream-tap.pcapng");
        var ours = new List<byte[]>();
        using (var reader = CaptureFileReader.Open(path))
        {
            while (reader.TryReadNext(out _))
            {
                ours.Add(reader.Data.ToArray());
            }
        }

        var theirs = new List<byte[]>();
        using (var device = new CaptureFileReaderDevice(path))
        {
            device.Open(new SharpPcap.DeviceConfiguration());
            while (device.GetNextPacket(out var packet) == SharpPcap.GetPacketStatus.PacketRead)
            {
                theirs.Add(packet.Data.ToArray());
            }
        }

        Assert.NotEmpty(ours);
        Assert.Equal(theirs.Count, ours.Count);
        for (var i = 0; i < ours.Count; i++)
        {
            Assert.Equal(theirs[i], ours[i]);
        }
    }
}
