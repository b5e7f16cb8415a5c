using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>The TCP control bits: RFC 9293's positions, read and written through byte 13.</summary>
public sealed class TcpFlagsTests
{
    [Fact]
    public void Bits_AreAtTheirRfcPositions()
    {
        // RFC 9293 3.1 (CWR and ECE, RFC 3168 23.2): byte 13 is CWR ECE URG ACK PSH RST SYN FIN, high bit first.
        TcpFlags[] order = [TcpFlags.Fin, TcpFlags.Syn, TcpFlags.Rst, TcpFlags.Psh, TcpFlags.Ack, TcpFlags.Urg, TcpFlags.Ece, TcpFlags.Cwr];
        for (var bit = 0; bit < order.Length; bit++)
        {
            Assert.Equal(1 << bit, (int)order[bit]);
        }
    }

    [Theory]
    [InlineData(TcpFlags.Syn, 1, 0)]
    [InlineData(TcpFlags.Syn | TcpFlags.Ack, 1, 0)]
    [InlineData(TcpFlags.Fin | TcpFlags.Ack, 1, 0)]
    [InlineData(TcpFlags.Ack | TcpFlags.Psh, 100, 100)]
    [InlineData(TcpFlags.Syn | TcpFlags.Fin, 2, 0)]
    [InlineData(TcpFlags.Rst, 0, 0)]
    [InlineData(TcpFlags.Cwr | TcpFlags.Ece | TcpFlags.Urg | TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Rst | TcpFlags.Syn | TcpFlags.Fin, 102, 100)]
    public void EveryCombination_RoundTrips_AndCountsInSequenceSpace(TcpFlags flags, int segmentLength, int dataLength)
    {
        var segment = new byte[TcpPacket.MinHeaderLength + dataLength];
        new TcpHeader(1, 2, 3, 4, flags, 5).WriteTo(segment, PseudoHeader.Ipv4(1, 2, IpProtocol.Tcp));
        Assert.Equal((byte)flags, segment[13]);
        Assert.True(TcpPacket.TryParse(segment, out var view));
        Assert.Equal(flags, view.Flags);
        Assert.Equal(segmentLength, view.SegmentLength);
    }

    [Fact]
    public void Combination_PrintsByName()
    {
        Assert.Equal("Syn, Ack", (TcpFlags.Syn | TcpFlags.Ack).ToString());
        Assert.Equal("None", TcpFlags.None.ToString());
    }
}
