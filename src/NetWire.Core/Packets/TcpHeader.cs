using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A TCP header with its options (RFC 9293 3.1) as values: what <see cref="TcpPacket"/> reads, to write.</summary>
/// <param name="SourcePort">The source port.</param>
/// <param name="DestinationPort">The destination port.</param>
/// <param name="SequenceNumber">The sequence number.</param>
/// <param name="AckNumber">The acknowledgment number.</param>
/// <param name="Flags">The control bits.</param>
/// <param name="Window">The window field, already scaled down.</param>
public readonly record struct TcpHeader(ushort SourcePort, ushort DestinationPort, uint SequenceNumber, uint AckNumber, TcpFlags Flags, ushort Window)
{
    /// <summary>The options, written after the fixed header.</summary>
    public TcpOptions Options { get; init; }

    /// <summary>The urgent pointer field.</summary>
    public ushort UrgentPointer { get; init; }

    /// <summary>Header bytes <see cref="WriteTo"/> writes: 20 plus the options.</summary>
    public int Length => TcpPacket.MinHeaderLength + Options.Length;

    /// <summary>
    /// The header of the segment <paramref name="segment"/>; false when the view does not parse or
    /// the options are malformed. Options are kept as <see cref="TcpOptions"/>, so <see cref="Length"/>
    /// equals the segment's header length only when its options were in the layout
    /// <see cref="TcpOptions.WriteTo"/> uses (as Linux sends them).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> segment, out TcpHeader header)
    {
        if (!TcpPacket.TryParse(segment, out var view) || !TcpOptions.TryParse(view.Options, out var options))
        {
            header = default;
            return false;
        }

        header = new TcpHeader(view.SourcePort, view.DestinationPort, view.SequenceNumber, view.AckNumber, view.Flags, view.Window)
        {
            Options = options,
            UrgentPointer = view.UrgentPointer,
        };
        return true;
    }

    /// <summary>
    /// Writes the header over the first <see cref="Length"/> bytes of <paramref name="segment"/>,
    /// whose data must already follow it (the whole span is the segment), and the checksum over
    /// the segment and <paramref name="pseudoHeader"/>.
    /// </summary>
    public void WriteTo(Span<byte> segment, PseudoHeader pseudoHeader)
    {
        WriteFields(segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], pseudoHeader.Compute(segment));
    }

    /// <summary>
    /// Writes the header as <see cref="WriteTo"/> does but leaves the checksum to the device: the
    /// field holds <see cref="PseudoHeader.Partial"/> for the whole segment, and the data is not
    /// read (<see cref="Frames.FrameOffload.NeedsChecksum"/>).
    /// </summary>
    public void WriteToWithChecksumOffload(Span<byte> segment, PseudoHeader pseudoHeader)
    {
        WriteFields(segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment[16..], pseudoHeader.Partial(segment.Length));
    }

    private void WriteFields(Span<byte> segment)
    {
        var length = Length;
        BinaryPrimitives.WriteUInt16BigEndian(segment, SourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(segment[2..], DestinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(segment[4..], SequenceNumber);
        BinaryPrimitives.WriteUInt32BigEndian(segment[8..], AckNumber);
        segment[12] = (byte)(length / 4 << 4);
        segment[13] = (byte)Flags;
        BinaryPrimitives.WriteUInt16BigEndian(segment[14..], Window);
        segment[16] = 0;
        segment[17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(segment[18..], UrgentPointer);
        if (length > TcpPacket.MinHeaderLength)
        {
            Options.WriteTo(segment[TcpPacket.MinHeaderLength..length]);
        }
    }
}
