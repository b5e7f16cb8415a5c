using NetWire.Devices.Pcap;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>Every kind of bad capture file gives one clear error naming the file, the record and the byte offset.</summary>
public sealed class CaptureFileBadInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-badcap-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WrongMagic_IsRefusedAtTheHeader()
    {
        var error = ReadAll(Write(_dir, "x.pcap", "GIF89a-not-a-capture-file"u8.ToArray()));
        Assert.Equal((0L, 0L), (error.Record, error.Offset));
        Assert.Contains("wrong magic", error.Message, StringComparison.Ordinal);
        Assert.StartsWith(Path.Combine(_dir, "x.pcap") + ": record 0 at byte offset 0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyFile_IsRefused() => Assert.Contains("empty file", ReadAll(Write(_dir, "e.pcap", [])).Message, StringComparison.Ordinal);

    [Fact]
    public void TruncatedFileHeader_IsRefused() =>
        Assert.Contains("truncated file header", ReadAll(Write(_dir, "h.pcap", PcapHeader()[..10])).Message, StringComparison.Ordinal);

    [Fact]
    public void TruncatedRecordData_NamesTheRecordAndItsOffset()
    {
        var bytes = Concat(PcapHeader(), PcapRecord(1, 0, Frame(1)), PcapRecord(2, 0, Frame(2)));
        var error = ReadAll(Write(_dir, "t.pcap", bytes[..^10]), out var good);
        Assert.Equal(1, good);
        Assert.Equal((2L, 24L + 16 + 60), (error.Record, error.Offset));
        Assert.Contains("truncated record: 50 of 60", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedRecordHeader_IsRefused()
    {
        var bytes = Concat(PcapHeader(), PcapRecord(1, 0, Frame(1)));
        var error = ReadAll(Write(_dir, "t.pcap", Concat(bytes, new byte[5])), out var good);
        Assert.Equal(1, good);
        Assert.Contains("truncated record header: 5 of 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RecordLongerThanSnaplen_IsRefused()
    {
        var error = ReadAll(Write(_dir, "s.pcap", Concat(PcapHeader(snaplen: 64), PcapRecord(1, 0, Frame(1, 100)))));
        Assert.Equal((1L, 24L), (error.Record, error.Offset));
        Assert.Contains("exceeds the snaplen 64", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RecordLongerThan256KiB_IsRefusedWithoutReadingIt()
    {
        var error = ReadAll(Write(_dir, "big.pcap", Concat(PcapHeader(snaplen: 0x7fffffff), PcapRecord(1, 0, Frame(1), capturedLength: 300_000))));
        Assert.Contains("exceeds the 262144-byte (256 KiB) limit", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ZeroLengthRecord_IsRefused()
    {
        var error = ReadAll(Write(_dir, "z.pcap", Concat(PcapHeader(), PcapRecord(1, 0, Frame(1)), PcapRecord(2, 0, []))), out var good);
        Assert.Equal(1, good);
        Assert.Equal(2, error.Record);
        Assert.Contains("zero-length record", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownPcapLinkType_IsRefusedAtTheHeader()
    {
        var error = ReadAll(Write(_dir, "l.pcap", Concat(PcapHeader(linkType: 113), PcapRecord(1, 0, Frame(1)))));
        Assert.Equal((0L, 20L), (error.Record, error.Offset));
        Assert.Contains("unknown link type 113", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownPcapNgLinkType_IsRefusedAtItsInterfaceBlock()
    {
        var error = ReadAll(Write(_dir, "l.pcapng", Concat(SectionHeader(), Interface(linkType: 101), EnhancedPacket(0, 0, Frame(1)))));
        Assert.Equal(28, error.Offset);
        Assert.Contains("unknown link type 101", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(8u, "bad block length 8")]
    [InlineData(94u, "bad block length 94")]
    [InlineData(0x10000000u, "bad block length 268435456")]
    [InlineData(88u, "bad block length: header says 88, trailer says")]
    public void PcapNgBlockWithBadLength_NamesTheBlock(uint length, string expected)
    {
        var packet = EnhancedPacket(0, 0, Frame(2));
        Put32(packet, 4, length);
        var bytes = Concat(SectionHeader(), Interface(), EnhancedPacket(0, 0, Frame(1)), packet, EnhancedPacket(0, 0, Frame(3)));
        var error = ReadAll(Write(_dir, "b.pcapng", bytes), out var good);
        Assert.Equal(1, good);
        Assert.Equal((2L, 28L + 20 + 92), (error.Record, error.Offset));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PcapNgTruncatedBlock_IsRefused()
    {
        var bytes = Concat(SectionHeader(), Interface(), EnhancedPacket(0, 0, Frame(1)));
        var error = ReadAll(Write(_dir, "t.pcapng", bytes[..^6]));
        Assert.Contains("truncated block: 86 of 92", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PcapNgPacketForUndescribedInterface_IsRefused()
    {
        var error = ReadAll(Write(_dir, "i.pcapng", Concat(SectionHeader(), Interface(), EnhancedPacket(3, 0, Frame(1)))));
        Assert.Contains("interface 3, but 1 are described", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PcapNgCapturedLengthPastItsBlock_IsRefused()
    {
        var error = ReadAll(Write(_dir, "p.pcapng", Concat(SectionHeader(), Interface(), EnhancedPacket(0, 0, Frame(1), capturedLength: 200))));
        Assert.Contains("runs past the end of its block", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RandomGarbageAfterAValidHeader_NeverCrashesOrHangs()
    {
        var random = new Random(42);
        for (var i = 0; i < 500; i++)
        {
            var tail = new byte[random.Next(0, 400)];
            random.NextBytes(tail);
            var head = i % 2 == 0 ? PcapHeader() : Concat(SectionHeader(), Interface());
            var path = Write(_dir, "r.cap", Concat(head, tail));
            try
            {
                using var reader = CaptureFileReader.Open(path);
                while (reader.TryReadNext(out _))
                {
                }
            }
            catch (CaptureFormatException)
            {
            }
        }
    }

    private static CaptureFormatException ReadAll(string path) => ReadAll(path, out _);

    private static CaptureFormatException ReadAll(string path, out int good)
    {
        good = 0;
        try
        {
            using var reader = CaptureFileReader.Open(path);
            while (reader.TryReadNext(out _))
            {
                good++;
            }
        }
        catch (CaptureFormatException ex)
        {
            return ex;
        }

        throw new Xunit.Sdk.XunitException($"{path} was read without an error ({good} records)");
    }
}
