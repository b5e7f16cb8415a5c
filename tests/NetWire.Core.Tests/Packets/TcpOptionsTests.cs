using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>TCP options: parsed from real layouts, written in Linux's, and malformed lists refused.</summary>
public sealed class TcpOptionsTests
{
    [Fact]
    public void LinuxSynOptions_ParseToEveryValue()
    {
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7: a Linux SYN.
        byte[] bytes = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        Assert.True(TcpOptions.TryParse(bytes, out var options));
        Assert.Equal(new TcpOptions { MaxSegmentSize = 1460, SackPermitted = true, Timestamps = new TcpTimestamps(1, 0), WindowScale = 7 }, options);
        Assert.Equal(bytes.Length, options.Length);
        var written = new byte[options.Length];
        Assert.Equal(bytes.Length, options.WriteTo(written));
        Assert.Equal(bytes, written);
    }

    [Theory]
    [InlineData(false, false, false, false, new byte[0])]
    [InlineData(true, false, false, false, new byte[] { 2, 4, 0x05, 0xb4 })]
    [InlineData(true, true, false, false, new byte[] { 2, 4, 0x05, 0xb4, 1, 3, 3, 7 })]
    [InlineData(false, false, true, false, new byte[] { 1, 1, 4, 2 })]
    [InlineData(false, false, false, true, new byte[] { 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6 })]
    [InlineData(true, true, true, true, new byte[] { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 3, 3, 7 })]
    public void EachCombination_WritesLinuxLayout_AndParsesBack(bool mss, bool scale, bool sack, bool timestamps, byte[] expected)
    {
        var options = new TcpOptions
        {
            MaxSegmentSize = mss ? (ushort)1460 : null,
            WindowScale = scale ? (byte)7 : null,
            SackPermitted = sack,
            Timestamps = timestamps ? new TcpTimestamps(5, 6) : null,
        };
        var written = new byte[options.Length];
        options.WriteTo(written);
        Assert.Equal(expected, written);
        Assert.Equal(0, written.Length % 4);
        Assert.True(TcpOptions.TryParse(written, out var parsed));
        Assert.Equal(options, parsed);
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0, 0 })]             // MSS with length 0: a parser that trusts it never advances
    [InlineData(new byte[] { 1, 1, 2, 8 })]             // MSS claiming 8 bytes where 2 are left
    [InlineData(new byte[] { 3, 40, 7, 0 })]            // window scale claiming 40 bytes
    [InlineData(new byte[] { 1, 1, 1, 8, 1, 0, 0, 0 })] // an option of length 1
    [InlineData(new byte[] { 1, 1, 1, 2 })]             // a kind with no length byte
    public void MalformedLists_AreRefused(byte[] bytes)
    {
        Assert.False(TcpOptions.TryParse(bytes, out var options));
        Assert.Equal(default, options);
        var reader = new TcpOptionReader(bytes);
        while (reader.MoveNext())
        {
        }

        Assert.True(reader.IsMalformed);
    }

    [Fact]
    public void KnownOptionsOfTheWrongLength_AndUnknownOnes_AreSkipped()
    {
        // MSS of length 3, an unknown kind 30, SACK blocks, End, then junk after End.
        byte[] bytes = [2, 3, 9, 30, 4, 1, 2, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 99];
        Assert.True(TcpOptions.TryParse(bytes, out var options));
        Assert.Equal(default, options);

        var reader = new TcpOptionReader(bytes);
        var kinds = new List<TcpOptionKind>();
        while (reader.MoveNext())
        {
            kinds.Add(reader.Kind);
        }

        Assert.Equal([TcpOptionKind.MaxSegmentSize, (TcpOptionKind)30, TcpOptionKind.Sack], kinds);
        Assert.False(reader.IsMalformed);
    }

    [Fact]
    public void HeaderWithOptions_SetsTheDataOffset_AndTheChecksumCoversThem()
    {
        var header = new TcpHeader(40000, 80, 1000, 0, TcpFlags.Syn, 64240) { Options = new TcpOptions { MaxSegmentSize = 1460, WindowScale = 7 } };
        Assert.Equal(28, header.Length);
        var segment = new byte[header.Length + 3];
        segment[^1] = 0x42;
        var pseudoHeader = PseudoHeader.Ipv4(0x0A00020F, 0x0A000202, IpProtocol.Tcp);
        header.WriteTo(segment, pseudoHeader);
        Assert.True(TcpPacket.TryParse(segment, out var view));
        Assert.Equal(28, view.HeaderLength);
        Assert.Equal(3, view.Payload.Length);
        Assert.True(view.IsChecksumValid(pseudoHeader));
        Assert.True(TcpHeader.TryParse(segment, out var parsed));
        Assert.Equal(header, parsed);
    }
}
