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

    [Fact]
    public void Rotation_StartsNewFilesUnderTheLimit_EachWithItsOwnHeaders()
    {
        var files = new List<MemoryStream> { new() };
        var options = new PcapNgWriterOptions { MaxFileBytes = PcapNgWriter.MinFileBytes(1514) };
        var frame = new byte[1514];
        const int Frames = 1000;
        using (var writer = new PcapNgWriter(files[0], ownsStream: false, options with { SnapLength = 1514 }, index =>
        {
            Assert.Equal(files.Count, index);
            files.Add(new MemoryStream());
            return files[^1];
        }))
        {
            var id = writer.AddInterface("guest<->host", "test");
            for (var i = 0; i < Frames; i++)
            {
                frame[0] = (byte)i;
                writer.Write(id, frame, CaptureDirection.Inbound, DateTimeOffset.UnixEpoch);
            }

            writer.Dispose();
            Assert.Equal(files.Count, writer.FilesOpened);
            Assert.Equal(Frames, writer.FramesWritten);
            Assert.Equal(0, writer.FramesDropped);
        }

        // 1000 blocks of 1560 bytes need several files; each is a whole pcapng stream within the limit.
        Assert.True(files.Count > 3, $"{files.Count} files");
        var packets = new List<byte>();
        foreach (var file in files)
        {
            var bytes = file.ToArray();
            Assert.True(bytes.Length <= options.MaxFileBytes, $"{bytes.Length} > {options.MaxFileBytes}");
            var blocks = Blocks(bytes);
            Assert.Equal([0x0A0D0D0Au, 1u], blocks.Take(2).Select(b => b.Type));
            Assert.All(blocks.Skip(2), b => Assert.Equal(6u, b.Type));
            packets.AddRange(blocks.Skip(2).Select(b => b.Body[20]));
        }

        Assert.Equal(Enumerable.Range(0, Frames).Select(i => (byte)i), packets);
    }

    [Fact]
    public void OutputThatFails_CountsEveryLaterFrameAsDropped()
    {
        var output = new FailingStream(failAfterBytes: 4096);
        using var writer = new PcapNgWriter(output, ownsStream: true, new PcapNgWriterOptions { FlushInterval = TimeSpan.FromMilliseconds(5) }, null);
        var id = writer.AddInterface("a", "b");
        var frame = new byte[600];
        var sent = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (writer.OutputError is null)
        {
            Assert.True(DateTime.UtcNow < deadline, "the failing output was never noticed");
            writer.Write(id, frame, CaptureDirection.Inbound, DateTimeOffset.UnixEpoch);
            sent++;
            writer.Flush();
        }

        for (var i = 0; i < 100; i++)
        {
            writer.Write(id, frame, CaptureDirection.Inbound, DateTimeOffset.UnixEpoch);
            sent++;
        }

        writer.Dispose();
        Assert.Contains("reader went away", writer.OutputError, StringComparison.Ordinal);
        Assert.Equal(sent, writer.FramesWritten + writer.FramesDropped);
        Assert.True(writer.FramesDropped >= 100);

        // What was written before the failure is whole blocks only up to the cut: 4096 bytes hold at most 6 frames.
        Assert.InRange(writer.FramesWritten, 0, 6);
    }

    [Fact]
    public void OutputThatStalls_DropsAndCountsInsteadOfBlockingTheWriter()
    {
        using var gate = new ManualResetEventSlim(false);
        var output = new StallingStream(gate);
        var writer = new PcapNgWriter(output, ownsStream: true, new PcapNgWriterOptions { BufferBytes = 1 << 20 }, null);
        var id = writer.AddInterface("a", "b");
        var frame = new byte[1514];

        // 10 MB into a 1 MB buffer whose output never returns: Write must keep returning.
        const int Frames = 7000;
        for (var i = 0; i < Frames; i++)
        {
            writer.Write(id, frame, CaptureDirection.Inbound, DateTimeOffset.UnixEpoch);
        }

        Assert.True(writer.FramesDropped > 0);
        Assert.Equal(Frames, writer.FramesWritten + writer.FramesDropped);
        gate.Set();
        writer.Dispose();
        Assert.Equal(Frames, writer.FramesWritten + writer.FramesDropped);
        Assert.Equal(writer.FramesWritten, Blocks(output.Written.ToArray()).Count(b => b.Type == 6u));
    }

    [Theory]
    [InlineData("cap.pcapng", 0, "cap.pcapng")]
    [InlineData("cap.pcapng", 2, "cap.2.pcapng")]
    [InlineData("/tmp/x/wire", 1, "/tmp/x/wire.1")]
    public void RotatedName_InsertsTheIndexBeforeTheExtension(string path, int index, string expected) =>
        Assert.Equal(expected, PcapNgWriter.RotatedName(path, index));

    /// <summary>Takes a few bytes, then fails as a pipe does when its reader has gone (EPIPE).</summary>
    private sealed class FailingStream(int failAfterBytes) : MemoryStream
    {
        public override void Write(byte[] buffer, int offset, int count)
        {
            if (Length + count > failAfterBytes)
            {
                throw new IOException("Broken pipe: the reader went away");
            }

            base.Write(buffer, offset, count);
        }
    }

    /// <summary>Blocks every write until the gate opens, as a pipe does whose reader stopped reading.</summary>
    private sealed class StallingStream(ManualResetEventSlim gate) : Stream
    {
        public MemoryStream Written { get; } = new();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            gate.Wait();
            Written.Write(buffer, offset, count);
        }
    }
}
