using System.Buffers.Binary;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Tests;

/// <summary>The Internet checksum, vector path and scalar tail, against RFC 1071's definition.</summary>
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
}
