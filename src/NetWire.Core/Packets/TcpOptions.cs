using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// The TCP options a segment carries, as values: maximum segment size, window scale, SACK
/// permitted and timestamps. SACK blocks and unknown options are skipped when parsing (walk
/// them with <see cref="TcpOptionReader"/>); a known option with the wrong length is ignored.
/// </summary>
/// <remarks>
/// <see cref="WriteTo"/> lays options out as Linux does, each on a 4-byte boundary: MSS, then
/// SACK permitted and timestamps (<c>4 2 8 10 ...</c>, or NOP NOP before either alone), then
/// NOP and window scale.
/// </remarks>
public readonly record struct TcpOptions
{
    /// <summary>The MSS option's value (RFC 9293 3.7.1), or null when absent.</summary>
    public ushort? MaxSegmentSize { get; init; }

    /// <summary>The window scale option's shift count as sent (RFC 7323 2.2; a receiver uses at most 14), or null when absent.</summary>
    public byte? WindowScale { get; init; }

    /// <summary>The SACK-permitted option is present (RFC 2018).</summary>
    public bool SackPermitted { get; init; }

    /// <summary>The timestamps option (RFC 7323 3), or null when absent.</summary>
    public TcpTimestamps? Timestamps { get; init; }

    /// <summary>Bytes <see cref="WriteTo"/> writes: a multiple of 4, at most 24.</summary>
    public int Length =>
        (MaxSegmentSize.HasValue ? 4 : 0) + (Timestamps.HasValue ? 12 : SackPermitted ? 4 : 0) + (WindowScale.HasValue ? 4 : 0);

    /// <summary>Reads <paramref name="options"/> (<see cref="TcpPacket.Options"/>); false when an option's length is under 2 or runs past the bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> options, out TcpOptions parsed)
    {
        parsed = default;
        var reader = new TcpOptionReader(options);
        while (reader.MoveNext())
        {
            var value = reader.Value;
            switch (reader.Kind)
            {
                case TcpOptionKind.MaxSegmentSize when value.Length == 2:
                    parsed = parsed with { MaxSegmentSize = BinaryPrimitives.ReadUInt16BigEndian(value) };
                    break;
                case TcpOptionKind.WindowScale when value.Length == 1:
                    parsed = parsed with { WindowScale = value[0] };
                    break;
                case TcpOptionKind.SackPermitted when value.Length == 0:
                    parsed = parsed with { SackPermitted = true };
                    break;
                case TcpOptionKind.Timestamps when value.Length == 8:
                    parsed = parsed with { Timestamps = new TcpTimestamps(BinaryPrimitives.ReadUInt32BigEndian(value), BinaryPrimitives.ReadUInt32BigEndian(value[4..])) };
                    break;
            }
        }

        if (reader.IsMalformed)
        {
            parsed = default;
            return false;
        }

        return true;
    }

    /// <summary>Writes the options to the start of <paramref name="destination"/>; returns <see cref="Length"/>.</summary>
    public int WriteTo(Span<byte> destination)
    {
        var at = 0;
        if (MaxSegmentSize is { } mss)
        {
            destination[0] = (byte)TcpOptionKind.MaxSegmentSize;
            destination[1] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(destination[2..], mss);
            at = 4;
        }

        if (Timestamps is { } timestamps)
        {
            destination[at] = SackPermitted ? (byte)TcpOptionKind.SackPermitted : (byte)TcpOptionKind.Nop;
            destination[at + 1] = SackPermitted ? (byte)2 : (byte)TcpOptionKind.Nop;
            destination[at + 2] = (byte)TcpOptionKind.Timestamps;
            destination[at + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(destination[(at + 4)..], timestamps.Value);
            BinaryPrimitives.WriteUInt32BigEndian(destination[(at + 8)..], timestamps.EchoReply);
            at += 12;
        }
        else if (SackPermitted)
        {
            destination[at] = (byte)TcpOptionKind.Nop;
            destination[at + 1] = (byte)TcpOptionKind.Nop;
            destination[at + 2] = (byte)TcpOptionKind.SackPermitted;
            destination[at + 3] = 2;
            at += 4;
        }

        if (WindowScale is { } shift)
        {
            destination[at] = (byte)TcpOptionKind.Nop;
            destination[at + 1] = (byte)TcpOptionKind.WindowScale;
            destination[at + 2] = 3;
            destination[at + 3] = shift;
            at += 4;
        }

        return at;
    }
}

/// <summary>The timestamps option's two values (RFC 7323 3.2).</summary>
/// <param name="Value">TSval: the sender's clock.</param>
/// <param name="EchoReply">TSecr: the latest TSval received.</param>
public readonly record struct TcpTimestamps(uint Value, uint EchoReply);
