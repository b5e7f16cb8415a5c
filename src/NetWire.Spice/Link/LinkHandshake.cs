using System.Buffers.Binary;

using NetWire.Core.Net;

namespace NetWire.Spice.Link;

/// <summary>
/// The server side of the link stage (protocol.md §1), over one connection's stream.
/// </summary>
/// <remarks>
/// How this works:
/// <code>
///   read SpiceLinkHeader (16)      bad magic -> INVALID_MAGIC reply; major != 2 -> VERSION_MISMATCH
///                                  reply (none for major 0, as spice-server); size outside
///                                  18..4096 -> INVALID_DATA reply
///   read SpiceLinkMess (size)      bad counts/offset -> INVALID_DATA reply
///   channel security policy        wrong port for the channel -> NEED_SECURED / NEED_UNSECURED reply
///   write header + reply + caps    fresh RSA-1024 key; caps of the requested channel type
///   read u32 auth mechanism        only when the client has AUTH_SELECTION; not 1 -> INVALID_DATA reply
///   read 128-byte ticket           wrong / expired / no password -> PERMISSION_DENIED result
///   (caller) route, write result   BAD_CONNECTION_ID, CHANNEL_NOT_AVAILABLE, or OK
/// </code>
/// Every refusal is answered and then the connection is closed. "Reply" is the 194-byte error
/// form; "result" is the 4-byte SpiceLinkErr. Nothing read is larger than 4096 bytes, and the
/// caller bounds the whole stage with a timeout. Non-main channels are authenticated before
/// they are routed, so an unauthenticated peer cannot probe for live session ids.
/// </remarks>
internal static class LinkHandshake
{
    /// <summary>Runs the stage up to and including the ticket check. Null: refused, already answered.</summary>
    /// <exception cref="EndOfStreamException">The client went away.</exception>
    public static async Task<LinkAttempt> RunAsync(
        Stream stream,
        TicketAuthority tickets,
        RsaKeyPool keys,
        Func<SpiceLinkMess, uint[]> channelCapsFor,
        Func<SpiceLinkMess, SpiceLinkErr>? security,
        PendingConnection? pending,
        CancellationToken cancellationToken)
    {
        var buffer = new byte[SpiceLinkHeader.MaxLinkMessSize];
        await stream.ReadExactlyAsync(buffer.AsMemory(0, SpiceLinkHeader.Length), cancellationToken).ConfigureAwait(false);
        _ = SpiceLinkHeader.TryParse(buffer, out var header);
        var headerCheck = header.Validate();
        if (headerCheck != SpiceLinkErr.Ok)
        {
            if (headerCheck != SpiceLinkErr.VersionMismatch || header.MajorVersion > 0)
            {
                await WriteErrorReplyAsync(stream, headerCheck, cancellationToken).ConfigureAwait(false);
            }

            // A TLS ClientHello (a handshake record, RFC 8446 5.1, of TLS 1.x) on the plaintext port.
            return buffer[0] == Core.Tls.TlsHandshake.HandshakeRecord && buffer[1] == 3
                ? LinkAttempt.Refused(headerCheck, "a TLS handshake on the plaintext port (use the TLS port)", LinkOutcome.TlsOnPlainPort)
                : LinkAttempt.Refused(headerCheck, DescribeHeader(headerCheck, header));
        }

        var size = (int)header.Size;
        await stream.ReadExactlyAsync(buffer.AsMemory(0, size), cancellationToken).ConfigureAwait(false);
        if (!SpiceLinkMess.TryParse(buffer.AsSpan(0, size), out var mess))
        {
            await WriteErrorReplyAsync(stream, SpiceLinkErr.InvalidData, cancellationToken).ConfigureAwait(false);
            return LinkAttempt.Refused(SpiceLinkErr.InvalidData, "caps counts or offset outside the link message");
        }

        // A whole link message: no longer silent, so a full link stage evicts others first.
        pending?.MarkProgress();

        // spice-server checks the channel's security before it answers (protocol.md §1.7).
        var secured = security?.Invoke(mess!) ?? SpiceLinkErr.Ok;
        if (secured != SpiceLinkErr.Ok)
        {
            await WriteErrorReplyAsync(stream, secured, cancellationToken).ConfigureAwait(false);
            return LinkAttempt.Refused(secured, secured == SpiceLinkErr.NeedSecured
                ? $"channel {mess!.ChannelType} must link over TLS"
                : $"channel {mess!.ChannelType} must link over plaintext");
        }

        using var key = keys.Take();
        uint[] common = [SpiceCaps.ServerCommonWord];
        var channel = channelCapsFor(mess!);
        var length = SpiceLinkReply.WriteOk(buffer, key.PublicKeyDer, common, channel);
        await stream.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);

        // protocol.md §1.6: the mechanism word comes when the *client* has AUTH_SELECTION (NetWire
        // always advertises it, so spice-gtk agrees).
        if (mess!.HasCommonCap(SpiceCaps.AuthSelection))
        {
            await stream.ReadExactlyAsync(buffer.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);
            var mechanism = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            if (mechanism != SpiceCaps.AuthSpice)
            {
                await WriteErrorReplyAsync(stream, SpiceLinkErr.InvalidData, cancellationToken).ConfigureAwait(false);
                return LinkAttempt.Refused(SpiceLinkErr.InvalidData, $"auth mechanism {mechanism} (only 1, SPICE ticket, is served)");
            }
        }

        await stream.ReadExactlyAsync(buffer.AsMemory(0, TicketAuthority.TicketLength), cancellationToken).ConfigureAwait(false);
        var check = tickets.Check(buffer.AsSpan(0, TicketAuthority.TicketLength), key.Rsa);
        if (check != SpiceLinkErr.Ok)
        {
            await WriteResultAsync(stream, check, cancellationToken).ConfigureAwait(false);
            return LinkAttempt.Refused(check, "ticket refused (wrong password, expired, or none set)");
        }

        return LinkAttempt.Authenticated(mess);
    }

    /// <summary>Writes the 4-byte link result.</summary>
    public static async Task WriteResultAsync(Stream stream, SpiceLinkErr result, CancellationToken cancellationToken)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)result);
        await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    private static async Task WriteErrorReplyAsync(Stream stream, SpiceLinkErr error, CancellationToken cancellationToken)
    {
        var bytes = new byte[SpiceLinkReply.ErrorLength];
        SpiceLinkReply.WriteError(bytes, error);
        await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    private static string DescribeHeader(SpiceLinkErr error, SpiceLinkHeader header) => error switch
    {
        SpiceLinkErr.InvalidMagic => $"magic 0x{header.Magic:X8} is not REDQ",
        SpiceLinkErr.VersionMismatch => $"protocol {header.MajorVersion}.{header.MinorVersion}, only 2.x is served",
        _ => $"link message size {header.Size} outside {SpiceLinkMess.FixedLength}..{SpiceLinkHeader.MaxLinkMessSize}",
    };
}

/// <summary>How the link stage ended before routing.</summary>
/// <param name="Outcome">Counted beside <paramref name="Error"/> when the refusal says more than its code.</param>
internal readonly record struct LinkAttempt(SpiceLinkMess? Mess, SpiceLinkErr Error, string Reason, LinkOutcome? Outcome = null)
{
    public static LinkAttempt Authenticated(SpiceLinkMess mess) => new(mess, SpiceLinkErr.Ok, "authenticated");

    public static LinkAttempt Refused(SpiceLinkErr error, string reason, LinkOutcome? outcome = null) => new(null, error, reason, outcome);
}
