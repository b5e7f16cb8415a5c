using System.Buffers.Binary;

namespace NetWire.Spice.Link;

/// <summary>
/// SpiceLinkReply (protocol.md §1.5), server to client, always preceded by a SpiceLinkHeader:
/// <code>
///   0 error u32 | 4 pub_key[162] (DER SubjectPublicKeyInfo, RSA-1024) | 166 num_common_caps
/// 170 num_channel_caps | 174 caps_offset (178) | 178 caps
/// </code>
/// The error form is the same 16 + 178 bytes, all zero but the error, with no caps.
/// </summary>
internal static class SpiceLinkReply
{
    /// <summary>Fixed part of the reply.</summary>
    public const int FixedLength = 178;

    /// <summary>DER SubjectPublicKeyInfo of an RSA-1024 key with e = 65537.</summary>
    public const int PublicKeyLength = 162;

    /// <summary>Total bytes (header included) of an error reply.</summary>
    public const int ErrorLength = SpiceLinkHeader.Length + FixedLength;

    /// <summary>Bytes (header included) of a reply with these caps.</summary>
    public static int Length(int commonWords, int channelWords) => SpiceLinkHeader.Length + FixedLength + (4 * (commonWords + channelWords));

    /// <summary>Writes header + OK reply + caps; returns the length written.</summary>
    public static int WriteOk(Span<byte> destination, ReadOnlySpan<byte> publicKeyDer, ReadOnlySpan<uint> commonCaps, ReadOnlySpan<uint> channelCaps)
    {
        if (publicKeyDer.Length != PublicKeyLength)
        {
            throw new ArgumentException($"RSA-1024 SubjectPublicKeyInfo is {PublicKeyLength} bytes, got {publicKeyDer.Length}", nameof(publicKeyDer));
        }

        var total = Length(commonCaps.Length, channelCaps.Length);
        SpiceLinkHeader.ForServer((uint)(total - SpiceLinkHeader.Length)).WriteTo(destination);
        var body = destination[SpiceLinkHeader.Length..total];
        BinaryPrimitives.WriteUInt32LittleEndian(body, (uint)SpiceLinkErr.Ok);
        publicKeyDer.CopyTo(body[4..]);
        BinaryPrimitives.WriteUInt32LittleEndian(body[166..], (uint)commonCaps.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[170..], (uint)channelCaps.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(body[174..], FixedLength);
        var at = FixedLength;
        foreach (var word in commonCaps)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body[at..], word);
            at += 4;
        }

        foreach (var word in channelCaps)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body[at..], word);
            at += 4;
        }

        return total;
    }

    /// <summary>Writes the 194-byte error form; returns its length.</summary>
    public static int WriteError(Span<byte> destination, SpiceLinkErr error)
    {
        var all = destination[..ErrorLength];
        all.Clear();
        SpiceLinkHeader.ForServer(FixedLength).WriteTo(all);
        BinaryPrimitives.WriteUInt32LittleEndian(all[SpiceLinkHeader.Length..], (uint)error);
        return ErrorLength;
    }
}
