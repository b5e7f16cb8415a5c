using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace NetWire.Core.Tls;

/// <summary>
/// What a TLS endpoint of NetWire uses, on either side: its credentials, TLS 1.2 or newer only,
/// the cipher suites allowed (<c>--tls-ciphers</c>; the platform's defaults when none are given;
/// a list of TLS 1.2 suites alone also turns TLS 1.3 off, and the other way round),
/// and how the peer's certificate is checked (<see cref="TlsPeerCheck"/>, against the CA file
/// only). Options are made per connection, so the reason a peer was refused is that
/// connection's (<see cref="TlsRejection"/>).
/// </summary>
public sealed class TlsSettings
{
    /// <summary>TLS 1.2 and 1.3: nothing older is ever negotiated.</summary>
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    private readonly SslStreamCertificateContext? _own;
    private readonly IReadOnlyList<TlsCipherSuite>? _cipherList;
    private readonly CipherSuitesPolicy? _ciphers;
    private readonly SslProtocols _protocols = Protocols;

    /// <param name="credentials">The CA to check peers against, and this end's certificate (required to accept).</param>
    /// <param name="ciphers">Allowed suites, or null for the platform's defaults.</param>
    /// <param name="requirePeerCertificate">Accepting: the peer must present a client certificate the CA signed (mutual TLS).</param>
    /// <param name="peerSubject">Connecting: the server certificate's subject must be this (spice-gtk's <c>cert-subject</c>) instead of matching the host.</param>
    /// <param name="time">The clock certificates are checked with.</param>
    public TlsSettings(X509Credentials credentials, IReadOnlyList<TlsCipherSuite>? ciphers = null, bool requirePeerCertificate = false, string? peerSubject = null, TimeProvider? time = null)
    {
        Credentials = credentials;
        RequirePeerCertificate = requirePeerCertificate;
        PeerSubject = peerSubject;
        Time = time ?? TimeProvider.System;
        _cipherList = ciphers;
        if (peerSubject is not null)
        {
            _ = TlsPeerCheck.ParseSubject(peerSubject);
        }

        if (credentials.Certificate is { } certificate)
        {
            _own = SslStreamCertificateContext.Create(certificate, credentials.Intermediates, offline: true);
        }

        if (ciphers is { Count: > 0 })
        {
            if (OperatingSystem.IsWindows())
            {
                throw new PlatformNotSupportedException("--tls-ciphers needs Linux (OpenSSL)");
            }

            _ciphers = new CipherSuitesPolicy(ciphers);
            _protocols = TlsCipherList.ProtocolsFor(ciphers);
        }
    }

    /// <summary>The CA and this end's certificate.</summary>
    public X509Credentials Credentials { get; }

    /// <summary>Accepting: a client certificate is required and checked.</summary>
    public bool RequirePeerCertificate { get; }

    /// <summary>Connecting: the subject the server's certificate must carry, or null to match the host.</summary>
    public string? PeerSubject { get; }

    /// <summary>The clock certificates are checked with.</summary>
    public TimeProvider Time { get; }

    /// <summary>The same settings checking the server's certificate against <paramref name="subject"/> (null: against the host).</summary>
    public TlsSettings WithPeerSubject(string? subject) =>
        subject == PeerSubject ? this : new TlsSettings(Credentials, _cipherList, RequirePeerCertificate, subject, Time);

    /// <summary>Options for accepting one connection.</summary>
    /// <exception cref="InvalidOperationException">These settings have no certificate of their own.</exception>
    public SslServerAuthenticationOptions ServerOptions(TlsRejection rejection)
    {
        var options = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = _own ?? throw new InvalidOperationException("accepting TLS needs a certificate"),
            EnabledSslProtocols = _protocols,
            CipherSuitesPolicy = _ciphers,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ClientCertificateRequired = RequirePeerCertificate,
        };
        if (RequirePeerCertificate)
        {
            options.RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
                rejection.Accept(TlsPeerCheck.Verify(certificate, chain, Credentials.Authorities, TlsRole.Client, null, null, Time.GetUtcNow()));
        }

        return options;
    }

    /// <summary>Options for connecting one connection to <paramref name="host"/>.</summary>
    public SslClientAuthenticationOptions ClientOptions(string host, TlsRejection rejection)
    {
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = _protocols,
            CipherSuitesPolicy = _ciphers,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            ClientCertificateContext = _own,
            RemoteCertificateValidationCallback = (_, certificate, chain, _) =>
                rejection.Accept(TlsPeerCheck.Verify(certificate, chain, Credentials.Authorities, TlsRole.Server, host, PeerSubject, Time.GetUtcNow())),
        };
        return options;
    }
}

/// <summary>Why this connection's certificate check refused the peer; set from inside the handshake.</summary>
public sealed class TlsRejection
{
    /// <summary>The reason, or null when the peer's certificate was not refused (or not checked yet).</summary>
    public string? Reason { get; private set; }

    /// <summary>Records <paramref name="reason"/>; true (accept) when it is null.</summary>
    public bool Accept(string? reason)
    {
        Reason = reason;
        return reason is null;
    }
}
