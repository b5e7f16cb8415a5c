using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using NetWire.Core.Net;

namespace NetWire.Core.Tls;

/// <summary>How accepting a TLS connection ended.</summary>
public enum TlsAcceptOutcome
{
    /// <summary>Handshake done: <see cref="TlsAccepted.Stream"/> carries the connection.</summary>
    Secured,

    /// <summary>The peer closed (or reset) before the handshake finished.</summary>
    PeerClosed,

    /// <summary>The peer's first bytes are not a TLS handshake record: it speaks plaintext.</summary>
    NotTls,

    /// <summary>The handshake failed: no common protocol version or cipher suite, or the peer refused ours.</summary>
    HandshakeFailed,

    /// <summary>The peer's certificate was missing or did not pass the check (mutual TLS).</summary>
    PeerRefused,
}

/// <summary>The result of <see cref="TlsHandshake.AcceptAsync"/>.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="Stream">The secured stream (owns the socket) when <see cref="TlsAcceptOutcome.Secured"/>, else null.</param>
/// <param name="Detail">Why it failed, for logs and replies; the protocol and suite when secured.</param>
public readonly record struct TlsAccepted(TlsAcceptOutcome Outcome, SslStream? Stream, string Detail);

/// <summary>
/// The handshakes of NetWire's TLS endpoints. Accepting first peeks at the peer's first bytes
/// without consuming them: a TLS connection starts with a handshake record (content type 22,
/// RFC 8446 5.1), so anything else is a plaintext peer on a TLS port, refused with a message
/// that says so before any of its bytes is read as data. The caller bounds the whole handshake
/// with its token (the SPICE link timeout, the migration handshake timeout).
/// </summary>
public static class TlsHandshake
{
    /// <summary>The first byte of every TLS record that carries a handshake message.</summary>
    public const byte HandshakeRecord = 22;

    /// <summary>
    /// Accepts TLS on <paramref name="inner"/> (a stream over <paramref name="socket"/>). The
    /// returned stream owns <paramref name="inner"/>; on any other outcome the caller disposes
    /// <paramref name="inner"/> as it would without TLS (it may be closed already).
    /// </summary>
    /// <exception cref="OperationCanceledException">The token was cancelled (timeout or stop).</exception>
    public static async Task<TlsAccepted> AcceptAsync(Socket socket, Stream inner, TlsSettings settings, CancellationToken cancellationToken)
    {
        var first = new byte[8];
        int peeked;
        try
        {
            peeked = await socket.ReceiveAsync(first, SocketFlags.Peek, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex)
        {
            return new TlsAccepted(TlsAcceptOutcome.PeerClosed, null, ex.Message);
        }

        if (peeked == 0)
        {
            return new TlsAccepted(TlsAcceptOutcome.PeerClosed, null, "closed before the handshake");
        }

        if (first[0] != HandshakeRecord)
        {
            return new TlsAccepted(TlsAcceptOutcome.NotTls, null, $"plaintext where TLS was expected (first bytes {Describe(first.AsSpan(0, peeked))})");
        }

        var rejection = new TlsRejection();
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsServerAsync(settings.ServerOptions(rejection), cancellationToken).ConfigureAwait(false);
            return new TlsAccepted(TlsAcceptOutcome.Secured, ssl, $"{Name(ssl.SslProtocol)} {ssl.NegotiatedCipherSuite}");
        }
        catch (AuthenticationException ex)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            return rejection.Reason is { } reason
                ? new TlsAccepted(TlsAcceptOutcome.PeerRefused, null, reason)
                : new TlsAccepted(TlsAcceptOutcome.HandshakeFailed, null, Message(ex));
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is EndOfStreamException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            return new TlsAccepted(TlsAcceptOutcome.PeerClosed, null, ex.Message);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Connects TLS over <paramref name="inner"/> to <paramref name="host"/>; the returned stream owns <paramref name="inner"/>.</summary>
    /// <exception cref="AuthenticationException">The handshake failed or the server's certificate was refused; the message says why.</exception>
    /// <exception cref="IOException">The connection failed during the handshake.</exception>
    public static async Task<SslStream> ConnectAsync(Stream inner, string host, TlsSettings settings, CancellationToken cancellationToken)
    {
        var rejection = new TlsRejection();
        var ssl = new SslStream(inner, leaveInnerStreamOpen: false);
        try
        {
            await ssl.AuthenticateAsClientAsync(settings.ClientOptions(host, rejection), cancellationToken).ConfigureAwait(false);
            return ssl;
        }
        catch (AuthenticationException ex)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new AuthenticationException(rejection.Reason is { } reason ? $"TLS with {host}: {reason}" : $"TLS with {host}: {Message(ex)}", ex);
        }
        catch
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>"TLS 1.3" for <see cref="SslProtocols.Tls13"/>.</summary>
    public static string Name(SslProtocols protocol) => protocol switch
    {
        SslProtocols.Tls12 => "TLS 1.2",
        SslProtocols.Tls13 => "TLS 1.3",
        _ => protocol.ToString(),
    };

    /// <summary>The exception's message with its inner messages (OpenSSL's reason is the innermost).</summary>
    private static string Message(Exception ex)
    {
        var text = new StringBuilder(ex.Message);
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            text.Append(": ").Append(inner.Message);
        }

        return text.ToString();
    }

    private static string Describe(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder();
        foreach (var b in bytes)
        {
            text.Append(b is >= 0x20 and < 0x7F ? (char)b : '.');
        }

        return $"'{text}', 0x{Convert.ToHexString(bytes)}";
    }
}
