using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NetWire.Core.Packets;

/// <summary>
/// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
/// 16-bit words. Summing in native byte order and swapping once at the end gives the same
/// result (RFC 1071 2(B)), which lets the loop add 32-bit words into a 64-bit accumulator.
/// </summary>
public static class Checksum
{
    /// <summary>Adds <paramref name="data"/> to a running native-order sum.</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, uint>(data);
        var i = 0;
        if (Vector.IsHardwareAccelerated && words.Length >= 4 * Vector<uint>.Count)
        {
            // Long data (segment payloads): 32-bit words widened into 64-bit lanes.
            // A lane gains under 2^33 per vector, so no frame comes near overflowing it.
            var lanes = MemoryMarshal.Cast<uint, Vector<uint>>(words);
            var wide = Vector<ulong>.Zero;
            for (var v = 0; v < lanes.Length; v++)
            {
                Vector.Widen(lanes[v], out var low, out var high);
                wide += low + high;
            }

            sum += Vector.Sum(wide);
            i = lanes.Length * Vector<uint>.Count;
        }

        for (; i < words.Length; i++)
        {
            sum += words[i];
        }

        var rest = data[(words.Length * 4)..];
        if (rest.Length >= 2)
        {
            sum += MemoryMarshal.Read<ushort>(rest);
            rest = rest[2..];
        }

        if (rest.Length == 1)
        {
            // An odd final byte is padded with a zero byte on the right (in wire order).
            Span<byte> pad = [rest[0], 0];
            sum += MemoryMarshal.Read<ushort>(pad);
        }

        return sum;
    }

    /// <summary>Folds a running sum to the 16-bit checksum value in network byte order (already complemented).</summary>
    public static ushort Finish(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        var native = (ushort)~sum;
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(native) : native;
    }

    /// <summary>
    /// Folds a running sum to 16 bits in network byte order without complementing it: the value a
    /// checksum field holds while the checksum is left to a device (<see cref="Frames.FrameOffload.NeedsChecksum"/>).
    /// </summary>
    public static ushort Fold(ulong sum)
    {
        while (sum >> 16 != 0)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        var native = (ushort)sum;
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(native) : native;
    }

    /// <summary>The checksum of <paramref name="data"/> alone (IP header, ICMP).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Add(0, data));

    /// <summary>True when data that includes its checksum field sums to all ones.</summary>
    public static bool IsValid(ulong sum) => Finish(sum) == 0;

    /// <summary>A 32-bit big-endian field's bytes as <see cref="Add"/> would read them (native order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Native(uint value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;

    /// <summary>A 16-bit big-endian field's bytes as <see cref="Add"/> would read them (native order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Native(ushort value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
}
