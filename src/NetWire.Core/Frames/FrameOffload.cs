namespace NetWire.Core.Frames;

/// <summary>
/// The offloads a wire end takes in the frames sent to it: work a producer may leave to the end
/// (a TAP with a virtio-net header leaves it to the kernel). An end that takes none gets plain
/// frames: full checksums, no frame longer than the link's MTU.
/// </summary>
[Flags]
public enum WireOffloads
{
    /// <summary>Plain frames only.</summary>
    None = 0,

    /// <summary>Frames may leave their TCP or UDP checksum to the end (<see cref="FrameOffload.NeedsChecksum"/>) or say it was verified (<see cref="FrameOffload.ChecksumValid"/>).</summary>
    Checksum = 1,

    /// <summary>TCP over IPv4 segments larger than the MSS, which the end cuts (<see cref="GsoKind.TcpV4"/>); comes with <see cref="Checksum"/>.</summary>
    Tso4 = 2,

    /// <summary>TCP over IPv6 segments larger than the MSS, which the end cuts (<see cref="GsoKind.TcpV6"/>); comes with <see cref="Checksum"/>.</summary>
    Tso6 = 4,

    /// <summary>Everything above.</summary>
    All = Checksum | Tso4 | Tso6,
}

/// <summary>How a large segment is to be cut, with the virtio-net header's gso_type values (virtio 1.2 5.1.6).</summary>
public enum GsoKind : byte
{
    /// <summary>Not a large segment.</summary>
    None = 0,

    /// <summary>A TCP over IPv4 segment cut into <see cref="FrameOffload.SegmentSize"/> bytes of data each.</summary>
    TcpV4 = 1,

    /// <summary>A TCP over IPv6 segment cut into <see cref="FrameOffload.SegmentSize"/> bytes of data each.</summary>
    TcpV6 = 4,
}

/// <summary>
/// What is still to be done to a frame, or was already checked, in the terms of the virtio-net
/// header (virtio 1.2 5.1.6) that a TAP opened with IFF_VNET_HDR reads and writes. The default
/// is a plain frame: nothing left to do, nothing vouched for.
/// </summary>
/// <remarks>
/// With <see cref="NeedsChecksum"/> the TCP or UDP checksum field holds the folded pseudo-header
/// sum (not complemented, <see cref="Packets.PseudoHeader.Partial"/>), and whoever finishes the
/// frame sums from <see cref="ChecksumStart"/> to its end and stores the complement at
/// <see cref="ChecksumStart"/> + <see cref="ChecksumOffset"/>. A receiver that terminates the
/// connection (the gateway's TCP endpoint) need not verify such a checksum at all: the frame came
/// from the kernel next door, not over a wire that could corrupt it.
/// </remarks>
public readonly record struct FrameOffload
{
    /// <summary>The transport checksum is left to the receiving device (VIRTIO_NET_HDR_F_NEEDS_CSUM).</summary>
    public bool NeedsChecksum { get; init; }

    /// <summary>The device verified the transport checksum already (VIRTIO_NET_HDR_F_DATA_VALID).</summary>
    public bool ChecksumValid { get; init; }

    /// <summary>Where the checksummed bytes start, from the start of the Ethernet frame (the transport header).</summary>
    public ushort ChecksumStart { get; init; }

    /// <summary>Where the checksum field is, from <see cref="ChecksumStart"/> (16 for TCP, 6 for UDP).</summary>
    public ushort ChecksumOffset { get; init; }

    /// <summary>How a large segment is to be cut; <see cref="GsoKind.None"/> for a frame sent as it is.</summary>
    public GsoKind Gso { get; init; }

    /// <summary>Data bytes per cut segment (the MSS) when <see cref="Gso"/> is set.</summary>
    public ushort SegmentSize { get; init; }

    /// <summary>Bytes of headers (Ethernet, IP, TCP) before the data, when <see cref="Gso"/> is set.</summary>
    public ushort HeaderLength { get; init; }

    /// <summary>True when there is nothing left to do to the frame.</summary>
    public bool IsPlain => !NeedsChecksum && Gso == GsoKind.None;

    /// <summary>True when the transport checksum need not be verified: left to the device, or verified by it.</summary>
    public bool ChecksumTrusted => NeedsChecksum || ChecksumValid;

    /// <summary>A TCP segment whose checksum is left to the device, cut into <paramref name="segmentSize"/>-byte segments when it carries more data than that.</summary>
    /// <param name="transportOffset">Where the TCP header starts in the frame.</param>
    /// <param name="headerLength">Bytes of headers before the data, TCP header included.</param>
    /// <param name="dataLength">Data bytes in the segment.</param>
    /// <param name="segmentSize">The MSS.</param>
    /// <param name="ipv6">The segment travels over IPv6.</param>
    public static FrameOffload TcpSegment(int transportOffset, int headerLength, int dataLength, int segmentSize, bool ipv6) => new()
    {
        NeedsChecksum = true,
        ChecksumStart = (ushort)transportOffset,
        ChecksumOffset = 16,
        Gso = dataLength > segmentSize ? (ipv6 ? GsoKind.TcpV6 : GsoKind.TcpV4) : GsoKind.None,
        SegmentSize = dataLength > segmentSize ? (ushort)segmentSize : (ushort)0,
        HeaderLength = dataLength > segmentSize ? (ushort)headerLength : (ushort)0,
    };
}
