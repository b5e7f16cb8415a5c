using System.Buffers.Binary;

namespace NetWire.Bench;

/// <summary>
/// The frame every load sends: a unicast destination that is not the TAP's own address and the
/// IEEE local experimental EtherType, so the kernel counts it in rx_packets and discards it
/// without handing it to a protocol.
/// </summary>
internal static class TestFrame
{
    /// <summary>Destination MAC; the script gives the TAP 02:00:00:00:00:01.</summary>
    public static ReadOnlySpan<byte> Destination => [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];

    /// <summary>Source MAC.</summary>
    public static ReadOnlySpan<byte> Source => [0x02, 0x00, 0x00, 0x00, 0x00, 0x98];

    /// <summary>IEEE 802 local experimental EtherType 1.</summary>
    public const ushort EtherType = 0x88b5;

    /// <summary>Smallest and largest sizes accepted: an Ethernet header, and a 1500-byte MTU frame.</summary>
    public const int MinLength = 14;

    /// <summary>The largest frame an AF_PACKET socket may send on a TAP with a 1500-byte MTU.</summary>
    public const int MaxLength = 1514;

    /// <summary>A frame of <paramref name="length"/> bytes (no FCS).</summary>
    public static byte[] Create(int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, MinLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxLength);
        var frame = new byte[length];
        Destination.CopyTo(frame);
        Source.CopyTo(frame.AsSpan(6));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), EtherType);
        for (var i = 14; i < length; i++)
        {
            frame[i] = (byte)i;
        }

        return frame;
    }

    /// <summary>
    /// As many copies of <paramref name="frame"/> as fit in <paramref name="maxBytes"/>, each
    /// behind QEMU's 4-byte big-endian length: one send on the guest stream socket.
    /// </summary>
    public static byte[] StreamBatch(byte[] frame, int maxBytes)
    {
        var stride = 4 + frame.Length;
        var count = Math.Max(1, maxBytes / stride);
        var batch = new byte[count * stride];
        for (var i = 0; i < count; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(batch.AsSpan(i * stride), (uint)frame.Length);
            frame.CopyTo(batch.AsSpan((i * stride) + 4));
        }

        return batch;
    }
}
