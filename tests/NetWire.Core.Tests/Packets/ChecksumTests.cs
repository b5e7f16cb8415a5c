using System.Buffers.Binary;
using System.Net;
using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>The Internet checksum, vector path and scalar tail, and the pseudo-headers, against RFC 1071's definition.</summary>
public sealed class ChecksumTests
{
    /// <summary>RFC 1071 literally: 16-bit big-endian words, end-around carry, odd byte padded with zero.</summary>
    private static ushort Reference(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i < data.Length; i += 2)
        {
            sum += i + 1 < data.Length ? BinaryPrimitives.ReadUInt16BigEndian(data[i..]) : (uint)(data[i] << 8);
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)~sum;
    }

    [Fact]
    public void RandomData_OfEveryLengthUpTo300AndSegmentSizes_MatchesRfc1071()
    {
        var random = new Random(1071);
        var lengths = Enumerable.Range(0, 301).Concat([1460, 1461, 8191, 65495, 65496]);
        foreach (var length in lengths)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.True(Reference(data) == Checksum.Compute(data), $"length {length}");
        }
    }

    [Fact]
    public void AllOnes_LongestSegment_DoesNotOverflow()
    {
        // Every word 0xffff: the largest sum a 64 KiB payload can produce.
        var data = new byte[65535];
        data.AsSpan().Fill(0xff);
        Assert.Equal(Reference(data), Checksum.Compute(data));
    }

    [Fact]
    public void DataWithItsOwnChecksum_IsValid_AndAFlippedBitIsNot()
    {
        var random = new Random(7);
        var data = new byte[4000];
        random.NextBytes(data);
        data[10] = 0;
        data[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(10), Reference(data));
        Assert.True(Checksum.IsValid(Checksum.Add(0, data)));
        data[3000] ^= 0x10;
        Assert.False(Checksum.IsValid(Checksum.Add(0, data)));
    }

    [Fact]
    public void Ipv4PseudoHeader_IsRfc9293sTwelveBytes()
    {
        var segment = new byte[1001];
        new Random(9293).NextBytes(segment);
        byte[] pseudo = [10, 0, 2, 15, 93, 184, 216, 34, 0, 6, 0x03, 0xe9];
        var expected = Reference([.. pseudo, .. segment]);
        Assert.Equal(expected, PseudoHeader.Ipv4(0x0A00020F, 0x5DB8D822, IpProtocol.Tcp).Compute(segment));
        Assert.Equal(expected, PseudoHeader.Create(IpAddr.FromIpv4(0x0A00020F), IpAddr.FromIpv4(0x5DB8D822), IpProtocol.Tcp).Compute(segment));
    }

    [Fact]
    public void Ipv6PseudoHeader_IsRfc8200sFortyBytes()
    {
        var segment = new byte[77];
        new Random(8200).NextBytes(segment);
        var source = IPAddress.Parse("fd00::15");
        var destination = IPAddress.Parse("2001:db8::1:2");
        var pseudo = new byte[40];
        source.GetAddressBytes().CopyTo(pseudo, 0);
        destination.GetAddressBytes().CopyTo(pseudo, 16);
        BinaryPrimitives.WriteUInt32BigEndian(pseudo.AsSpan(32), (uint)segment.Length);
        pseudo[39] = 17;
        var header = PseudoHeader.Create(IpAddr.FromAddress(source), IpAddr.FromAddress(destination), IpProtocol.Udp);
        Assert.Equal(Reference([.. pseudo, .. segment]), header.Compute(segment));
    }

    [Fact]
    public void SegmentWithItsChecksum_Verifies_AndNotUnderAnotherPseudoHeader()
    {
        var segment = new byte[40];
        new Random(1).NextBytes(segment);
        segment[16] = 0;
        segment[17] = 0;
        var pseudoHeader = PseudoHeader.Ipv4(1, 2, IpProtocol.Tcp);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(16), pseudoHeader.Compute(segment));
        Assert.True(pseudoHeader.Verifies(segment));
        Assert.False(PseudoHeader.Ipv4(1, 2, IpProtocol.Udp).Verifies(segment));
        Assert.False(PseudoHeader.Ipv4(1, 3, IpProtocol.Tcp).Verifies(segment));
    }

    [Fact]
    public void ChecksumLeftToTheDevice_FinishedAsADeviceDoes_EqualsTheFullChecksum()
    {
        // A device finishing CHECKSUM_PARTIAL sums from the transport header to the end, the field
        // holding the folded pseudo-header sum, and stores the complement (virtio 1.2 5.1.6.2).
        var random = new Random(5162);
        foreach (var dataLength in (int[])[0, 1, 7, 1460, 65455])
        {
            var header = new TcpHeader(40000, 80, (uint)random.Next(), (uint)random.Next(), TcpFlags.Ack | TcpFlags.Psh, 512);
            var full = new byte[header.Length + dataLength];
            random.NextBytes(full.AsSpan(header.Length));
            var partial = full.ToArray();
            var pseudoHeader = PseudoHeader.Ipv4(0x0A000202, 0x0A000264, IpProtocol.Tcp);
            header.WriteTo(full, pseudoHeader);
            header.WriteToWithChecksumOffload(partial, pseudoHeader);
            Assert.True(pseudoHeader.Verifies(full));

            var finished = Reference(partial);
            BinaryPrimitives.WriteUInt16BigEndian(partial.AsSpan(16), finished);
            Assert.True(full.AsSpan().SequenceEqual(partial), $"{dataLength} data bytes");
        }
    }
}
