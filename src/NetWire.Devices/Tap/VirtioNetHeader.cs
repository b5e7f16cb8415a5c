using System.Buffers.Binary;
using NetWire.Core.Frames;

namespace NetWire.Devices.Tap;

/// <summary>
/// The 10-byte virtio-net header (struct virtio_net_hdr, virtio 1.2 5.1.6) that a TAP opened
/// with IFF_VNET_HDR puts before every frame it reads and expects before every frame written:
/// flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. A TAP uses the host's byte order
/// for it (legacy virtio) unless told otherwise, so this does too.
/// </summary>
internal static class VirtioNetHeader
{
    /// <summary>sizeof(struct virtio_net_hdr), the TAP's default header size.</summary>
    public const int Length = 10;

    private const byte NeedsChecksum = 1;
    private const byte DataValid = 2;
    private const byte GsoEcn = 0x80;

    /// <summary>What the header in front of a frame read from the TAP says about it.</summary>
    public static FrameOffload Read(ReadOnlySpan<byte> header)
    {
        var flags = header[0];
        var gso = (byte)(header[1] & ~GsoEcn);
        return new FrameOffload
        {
            NeedsChecksum = (flags & NeedsChecksum) != 0,
            ChecksumValid = (flags & DataValid) != 0,
            Gso = gso is (byte)GsoKind.TcpV4 or (byte)GsoKind.TcpV6 ? (GsoKind)gso : GsoKind.None,
            HeaderLength = ReadNative(header[2..]),
            SegmentSize = ReadNative(header[4..]),
            ChecksumStart = ReadNative(header[6..]),
            ChecksumOffset = ReadNative(header[8..]),
        };
    }

    /// <summary>Writes the header for a frame with <paramref name="offload"/> to the TAP.</summary>
    public static void Write(Span<byte> header, FrameOffload offload)
    {
        header[0] = offload.NeedsChecksum ? NeedsChecksum : (byte)0;
        header[1] = (byte)offload.Gso;
        WriteNative(header[2..], offload.Gso == GsoKind.None ? (ushort)0 : offload.HeaderLength);
        WriteNative(header[4..], offload.Gso == GsoKind.None ? (ushort)0 : offload.SegmentSize);
        WriteNative(header[6..], offload.NeedsChecksum ? offload.ChecksumStart : (ushort)0);
        WriteNative(header[8..], offload.NeedsChecksum ? offload.ChecksumOffset : (ushort)0);
    }

    private static ushort ReadNative(ReadOnlySpan<byte> bytes) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReadUInt16LittleEndian(bytes) : BinaryPrimitives.ReadUInt16BigEndian(bytes);

    private static void WriteNative(Span<byte> bytes, ushort value)
    {
        if (BitConverter.IsLittleEndian)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        }
    }
}
