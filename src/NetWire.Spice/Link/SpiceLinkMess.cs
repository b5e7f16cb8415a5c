using System.Buffers.Binary;

namespace NetWire.Spice.Link;

/// <summary>
/// SpiceLinkMess (protocol.md §1.3), client to server, 18 bytes then caps:
/// <code>
///   0 connection_id u32 | 4 channel_type u8 | 5 channel_id u8 | 6 num_common_caps u32
///  10 num_channel_caps u32 | 14 caps_offset u32 | caps_offset: common words, channel words
/// </code>
/// Validation follows the real server and goes further where it was exploitable: each count
/// at most 1024, the caps inside the message with 64-bit arithmetic (no u32 wrap), and an
/// offset below 18 refused whenever there are caps. The caps arrays are the only allocation,
/// and they are bounded by the message size.
/// </summary>
internal sealed record SpiceLinkMess(uint ConnectionId, byte ChannelType, byte ChannelId, uint[] CommonCaps, uint[] ChannelCaps)
{
    /// <summary>Size of the fixed part.</summary>
    public const int FixedLength = 18;

    /// <summary>Upper bound on each caps count, as in spice-server's CVE-2016-9578 fix.</summary>
    public const uint MaxCapsWords = 1024;

    /// <summary>Parses the link message body (header.size bytes). False means INVALID_DATA.</summary>
    public static bool TryParse(ReadOnlySpan<byte> body, out SpiceLinkMess? mess)
    {
        mess = null;
        if (body.Length < FixedLength)
        {
            return false;
        }

        var connectionId = BinaryPrimitives.ReadUInt32LittleEndian(body);
        var channelType = body[4];
        var channelId = body[5];
        var numCommon = BinaryPrimitives.ReadUInt32LittleEndian(body[6..]);
        var numChannel = BinaryPrimitives.ReadUInt32LittleEndian(body[10..]);
        var capsOffset = BinaryPrimitives.ReadUInt32LittleEndian(body[14..]);
        if (numCommon > MaxCapsWords || numChannel > MaxCapsWords)
        {
            return false;
        }

        var words = numCommon + numChannel;
        if (words > 0)
        {
            if (capsOffset < FixedLength || (ulong)capsOffset + (4UL * words) > (ulong)body.Length)
            {
                return false;
            }
        }

        var common = ReadWords(body, capsOffset, numCommon);
        var channel = ReadWords(body, capsOffset + (4 * numCommon), numChannel);
        mess = new SpiceLinkMess(connectionId, channelType, channelId, common, channel);
        return true;
    }

    /// <summary>Writes a link message (client side; tests and the benchmark client use it).</summary>
    public int WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, ConnectionId);
        destination[4] = ChannelType;
        destination[5] = ChannelId;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[6..], (uint)CommonCaps.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[10..], (uint)ChannelCaps.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[14..], FixedLength);
        var at = FixedLength;
        foreach (var word in CommonCaps)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(destination[at..], word);
            at += 4;
        }

        foreach (var word in ChannelCaps)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(destination[at..], word);
            at += 4;
        }

        return at;
    }

    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public int Length => FixedLength + (4 * (CommonCaps.Length + ChannelCaps.Length));

    /// <summary>True when the client set common capability <paramref name="cap"/>.</summary>
    public bool HasCommonCap(int cap) => SpiceCaps.Has(CommonCaps, cap);

    /// <summary>True when the client set channel capability <paramref name="cap"/>.</summary>
    public bool HasChannelCap(int cap) => SpiceCaps.Has(ChannelCaps, cap);

    private static uint[] ReadWords(ReadOnlySpan<byte> body, uint offset, uint count)
    {
        if (count == 0)
        {
            return [];
        }

        var words = new uint[count];
        var source = body.Slice((int)offset, (int)(count * 4));
        for (var i = 0; i < words.Length; i++)
        {
            words[i] = BinaryPrimitives.ReadUInt32LittleEndian(source[(i * 4)..]);
        }

        return words;
    }
}
