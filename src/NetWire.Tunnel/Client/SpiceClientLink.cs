using System.Buffers.Binary;
using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Tls;
using NetWire.Spice.Link;

namespace NetWire.Tunnel.Client;

/// <summary>
/// The client side of the link stage (protocol.md §1.1): link message, the server's reply with its RSA
/// key and caps, the SPICE ticket auth mechanism, the password encrypted with RSA-OAEP (SHA-1),
/// and the 4-byte result; over TLS from the first byte when TLS settings are given.
/// </summary>
internal static class SpiceClientLink
{
    /// <summary>Common caps the client offers: AUTH_SELECTION, AUTH_SPICE, MINI_HEADER.</summary>
    public const uint CommonCaps = SpiceCaps.ServerCommonWord;

    /// <summary>Links one channel; returns the open stream and whether mini headers are in use.</summary>
    /// <param name="tls">TLS settings for a TLS port (the CA and the name to check), or null for plaintext.</param>
    /// <exception cref="SpiceLinkException">The server refused the link.</exception>
    /// <exception cref="SocketException">No connection.</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The TLS handshake failed or the server's certificate was refused.</exception>
    public static async Task<(Stream Stream, bool MiniHeader)> LinkAsync(
        string host, int port, uint connectionId, SpiceChannelType type, byte[] password, CancellationToken cancellationToken, uint channelCaps = 0, TlsSettings? tls = null)
    {
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? stream = null;
        try
        {
            await client.ConnectAsync(host, port, cancellationToken).ConfigureAwait(false);
            stream = new NetworkStream(client, ownsSocket: true);
            if (tls is not null)
            {
                stream = await TlsHandshake.ConnectAsync(stream, host, tls, cancellationToken).ConfigureAwait(false);
            }

            var mini = await HandshakeAsync(stream, connectionId, type, password, channelCaps, cancellationToken).ConfigureAwait(false);
            return (stream, mini);
        }
        catch
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                client.Dispose();
            }

            throw;
        }
    }

    private static async Task<bool> HandshakeAsync(Stream stream, uint connectionId, SpiceChannelType type, byte[] password, uint channelCaps, CancellationToken cancellationToken)
    {
        var mess = new SpiceLinkMess(connectionId, (byte)type, 0, [CommonCaps], channelCaps == 0 ? [] : [channelCaps]);
        var buffer = new byte[SpiceLinkHeader.Length + SpiceLinkHeader.MaxLinkMessSize];
        new SpiceLinkHeader(SpiceLinkHeader.RedqMagic, SpiceLinkHeader.ProtocolMajor, SpiceLinkHeader.ProtocolMinor, (uint)mess.Length).WriteTo(buffer);
        var length = SpiceLinkHeader.Length + mess.WriteTo(buffer.AsSpan(SpiceLinkHeader.Length));
        await stream.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);

        await stream.ReadExactlyAsync(buffer.AsMemory(0, SpiceLinkHeader.Length), cancellationToken).ConfigureAwait(false);
        _ = SpiceLinkHeader.TryParse(buffer, out var header);
        if (header.Magic != SpiceLinkHeader.RedqMagic || header.MajorVersion != SpiceLinkHeader.ProtocolMajor
            || header.Size < 4 || header.Size > SpiceLinkHeader.MaxLinkMessSize)
        {
            throw new SpiceLinkException(SpiceLinkErr.InvalidData, $"the server's link reply header is not SPICE 2 (size {header.Size})");
        }

        var body = buffer.AsMemory(0, (int)header.Size);
        await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
        var error = (SpiceLinkErr)BinaryPrimitives.ReadUInt32LittleEndian(body.Span);
        if (error != SpiceLinkErr.Ok)
        {
            throw new SpiceLinkException(error, $"link refused: {error}");
        }

        if (header.Size < SpiceLinkReply.FixedLength)
        {
            throw new SpiceLinkException(SpiceLinkErr.InvalidData, $"link reply of {header.Size} bytes");
        }

        var span = body.Span;
        var publicKey = span.Slice(4, SpiceLinkReply.PublicKeyLength).ToArray();
        var numCommon = BinaryPrimitives.ReadUInt32LittleEndian(span[166..]);
        var numChannel = BinaryPrimitives.ReadUInt32LittleEndian(span[170..]);
        var capsOffset = BinaryPrimitives.ReadUInt32LittleEndian(span[174..]);
        if (numCommon > SpiceLinkMess.MaxCapsWords || numChannel > SpiceLinkMess.MaxCapsWords
            || (ulong)capsOffset + (4UL * (numCommon + numChannel)) > header.Size)
        {
            throw new SpiceLinkException(SpiceLinkErr.InvalidData, "caps outside the server's link reply");
        }

        var serverCommon = numCommon > 0 ? BinaryPrimitives.ReadUInt32LittleEndian(span[(int)capsOffset..]) : 0;
        var mini = SpiceCaps.Has([serverCommon], SpiceCaps.MiniHeader);

        // AUTH_SELECTION is offered, so the mechanism word comes first (protocol.md §1.6).
        var ticket = new byte[password.Length + 1];
        password.CopyTo(ticket, 0);
        byte[] encrypted;
        try
        {
            encrypted = TicketAuthority.EncryptTicket(publicKey, ticket);
        }
        catch (System.Security.Cryptography.CryptographicException ex)
        {
            throw new SpiceLinkException(SpiceLinkErr.InvalidData, $"the server's public key is not usable: {ex.Message}");
        }

        var auth = new byte[4 + encrypted.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(auth, SpiceCaps.AuthSpice);
        encrypted.CopyTo(auth, 4);
        await stream.WriteAsync(auth, cancellationToken).ConfigureAwait(false);
        await stream.ReadExactlyAsync(buffer.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);
        var result = (SpiceLinkErr)BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        if (result != SpiceLinkErr.Ok)
        {
            throw new SpiceLinkException(result, $"link refused: {result}");
        }

        return mini;
    }
}

/// <summary>The server refused a link (the SpiceLinkErr it sent), or its reply made no sense.</summary>
internal sealed class SpiceLinkException : Exception, IHasEndReason
{
    public SpiceLinkException()
    {
    }

    public SpiceLinkException(string message)
        : base(message)
    {
    }

    public SpiceLinkException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public SpiceLinkException(SpiceLinkErr error, string message)
        : base(message) => Error = error;

    /// <summary>What the server answered.</summary>
    public SpiceLinkErr Error { get; }

    /// <inheritdoc/>
    public EndReason EndReason => EndReason.Refused;
}
