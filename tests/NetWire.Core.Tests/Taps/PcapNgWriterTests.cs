using System.Buffers.Binary;
using NetWire.Core.Taps;

namespace NetWire.Core.Tests.Taps;

public sealed class PcapNgWriterTests
{
    /// <summary>Walks the blocks of a pcapng stream: (type, body) pairs, checking both length fields.</summary>
    private static List<(uint Type, byte[] Body)> Blocks(byte[] file)
    {
        var blocks = new List<(uint, byte[])>();
        var at = 0;
        while (at < file.Length)
        {
            var type = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 4));
            Assert.Equal(0, length % 4);
            Assert.Equal((uint)length, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + length - 4)));
            blocks.Add((type, file.AsSpan(at + 8, length - 12).ToArray()));
            at += length;
        }

        Assert.Equal(file.Length, at);
        return blocks;
    }

    [Fact]
    public void Writes_SectionInterfaceAndPacketBlocks_WithDirectionFlags()
    {
        var stream = new MemoryStream();
        var frame = Enumerable.Range(0, 61).Select(i => (byte)i).ToArray();
        var when = new DateTimeOffset(2026, 11, 26, 1, 2, 3, TimeSpan.Zero).AddTicks(45670);
        using (var writer = new PcapNgWriter(stream, ownsStream: false))
        {
            var id = writer.AddInterface("guest<->host", "test");
            writer.Write(id, frame, CaptureDirection.Outbound, when);
            Assert.Equal(1, writer.FramesWritten);
        }

        var blocks = Blocks(stream.ToArray());
        Assert.Equal([0x0A0D0D0Au, 1u, 6u], blocks.Select(b => b.Type));
        Assert.Equal(0x1A2B3C4Du, BinaryPrimitives.ReadUInt32LittleEndian(blocks[0].Body));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(blocks[1].Body));

        var epb = blocks[2].Body;
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(epb));
        var micros = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(4)) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(8));
        Assert.Equal((ulong)((when - DateTimeOffset.UnixEpoch).Ticks / 10), micros);
        Assert.Equal(4567u, (uint)(micros % 1_000_000));
        Assert.Equal(61u, BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(12)));
        Assert.Equal(61u, BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(16)));
        Assert.Equal(frame, epb.AsSpan(20, 61).ToArray());
        var option = epb.AsSpan(20 + 64);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(option));
        Assert.Equal(4, BinaryPrimitives.ReadUInt16LittleEndian(option[2..]));
        Assert.Equal((uint)CaptureDirection.Outbound, BinaryPrimitives.ReadUInt32LittleEndian(option[4..]));
    }

    [Fact]
    public void SnapLength_CutsCapturedBytes_KeepsOriginalLength()
    {
        var stream = new MemoryStream();
        using (var writer = new PcapNgWriter(stream, ownsStream: false, snapLength: 64))
        {
            writer.Write(writer.AddInterface("a", "b"), new byte[1514], CaptureDirection.Inbound, DateTimeOffset.UnixEpoch);
        }

        var epb = Blocks(stream.ToArray())[2].Body;
        Assert.Equal(64u, BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(12)));
        Assert.Equal(1514u, BinaryPrimitives.ReadUInt32LittleEndian(epb.AsSpan(16)));
    }
}
