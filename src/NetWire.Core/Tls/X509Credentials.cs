using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace NetWire.Core.Tls;

/// <summary>Which end of a TLS connection a certificate is for: the one that accepts or the one that connects.</summary>
public enum TlsRole
{
    /// <summary>Accepts: <c>server-cert.pem</c> / <c>server-key.pem</c>, extended key usage serverAuth.</summary>
    Server,

    /// <summary>Connects: <c>client-cert.pem</c> / <c>client-key.pem</c>, extended key usage clientAuth.</summary>
    Client,
}

/// <summary>
/// Certificates read from QEMU's <c>x509-dir</c> layout (<c>ca-cert.pem</c>,
/// <c>server-cert.pem</c>, <c>server-key.pem</c>, <c>client-cert.pem</c>, <c>client-key.pem</c>),
/// checked the way QEMU checks its TLS credentials before it uses them.
/// </summary>
/// <remarks>
/// How this works. <see cref="LoadAuthorities"/> reads the CA file: every certificate in it must
/// be valid now and be a CA (basic constraints). <see cref="Load"/> adds the certificate of one
/// role and its key: the first certificate of the file is the leaf (any more are intermediates
/// sent along with it), valid now, with the role's extended key usage when it has one, signed
/// (through the intermediates) by a certificate of the CA file, and the key must be the leaf's.
/// Every failure is a <see cref="TlsCredentialsException"/> naming the file at fault, so a
/// wrong directory is found at start and not by the first client.
/// </remarks>
public sealed class X509Credentials : IDisposable
{
    /// <summary>The trusted CA certificates.</summary>
    public const string CaCertFile = "ca-cert.pem";

    /// <summary>The certificate a server presents.</summary>
    public const string ServerCertFile = "server-cert.pem";

    /// <summary>The server certificate's private key (PEM, unencrypted).</summary>
    public const string ServerKeyFile = "server-key.pem";

    /// <summary>The certificate a client presents (mutual TLS).</summary>
    public const string ClientCertFile = "client-cert.pem";

    /// <summary>The client certificate's private key (PEM, unencrypted).</summary>
    public const string ClientKeyFile = "client-key.pem";

    private X509Credentials(string caFile, X509Certificate2Collection authorities)
    {
        CaFile = caFile;
        Authorities = authorities;
    }

    /// <summary>The CA file the certificates were checked against.</summary>
    public string CaFile { get; }

    /// <summary>The CA certificates a peer's certificate must chain to.</summary>
    public X509Certificate2Collection Authorities { get; }

    /// <summary>The role's certificate with its private key; null for trust only (<see cref="LoadAuthorities"/>).</summary>
    public X509Certificate2? Certificate { get; private set; }

    /// <summary>Intermediate certificates sent with <see cref="Certificate"/>.</summary>
    public X509Certificate2Collection Intermediates { get; private set; } = [];

    /// <summary>The file <see cref="Certificate"/> was read from.</summary>
    public string? CertificateFile { get; private set; }

    /// <summary>The role <see cref="Certificate"/> serves.</summary>
    public TlsRole? Role { get; private set; }

    /// <summary>The certificate file of <paramref name="role"/> in <paramref name="directory"/>.</summary>
    public static string CertificatePath(string directory, TlsRole role) =>
        Path.Combine(directory, role == TlsRole.Server ? ServerCertFile : ClientCertFile);

    /// <summary>The key file of <paramref name="role"/> in <paramref name="directory"/>.</summary>
    public static string KeyPath(string directory, TlsRole role) =>
        Path.Combine(directory, role == TlsRole.Server ? ServerKeyFile : ClientKeyFile);

    /// <summary>
    /// True when <paramref name="directory"/> has either file of <paramref name="role"/>; a role
    /// with one file of the two is then an error at <see cref="AddRole"/>, not silently absent.
    /// </summary>
    public static bool HasRole(string directory, TlsRole role) =>
        File.Exists(CertificatePath(directory, role)) || File.Exists(KeyPath(directory, role));

    /// <summary>Reads and checks the CA file alone (a client that only verifies its server).</summary>
    /// <exception cref="TlsCredentialsException">The file is missing, unreadable, not PEM, or a certificate in it is not a CA valid at <paramref name="now"/>.</exception>
    public static X509Credentials LoadAuthorities(string caFile, DateTimeOffset now)
    {
        var authorities = ReadCertificates(caFile);
        foreach (var authority in authorities)
        {
            CheckTime(caFile, authority, now);
            if (authority.Extensions[Oids.BasicConstraints] is not X509BasicConstraintsExtension { CertificateAuthority: true })
            {
                throw new TlsCredentialsException(caFile, $"'{authority.Subject}' is not a CA certificate (its basic constraints do not say CA)");
            }
        }

        return new X509Credentials(caFile, authorities);
    }

    /// <summary>Reads and checks <c>ca-cert.pem</c> and the certificate and key of <paramref name="role"/> in <paramref name="directory"/>.</summary>
    /// <exception cref="TlsCredentialsException">A file is missing or wrong; the message names it.</exception>
    public static X509Credentials Load(string directory, TlsRole role, DateTimeOffset now)
    {
        var credentials = LoadAuthorities(Path.Combine(directory, CaCertFile), now);
        try
        {
            credentials.AddRole(directory, role, now);
            return credentials;
        }
        catch
        {
            credentials.Dispose();
            throw;
        }
    }

    /// <summary>Adds the certificate and key of <paramref name="role"/> from <paramref name="directory"/>, checked against the CA.</summary>
    /// <exception cref="TlsCredentialsException">A file is missing or wrong; the message names it.</exception>
    public void AddRole(string directory, TlsRole role, DateTimeOffset now)
    {
        var certFile = CertificatePath(directory, role);
        var keyFile = KeyPath(directory, role);
        var chain = ReadCertificates(certFile);
        var leaf = chain[0];
        CheckTime(certFile, leaf, now);
        if (!HasUsage(leaf, role))
        {
            throw new TlsCredentialsException(certFile, $"its extended key usage does not allow TLS {(role == TlsRole.Server ? "server" : "client")} authentication");
        }

        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < chain.Count; i++)
        {
            intermediates.Add(chain[i]);
        }

        if (TlsPeerCheck.ChainError(leaf, intermediates, Authorities, now) is { } chainError)
        {
            throw new TlsCredentialsException(certFile, $"is not signed by {CaFile}: {chainError}");
        }

        Certificate = WithKey(certFile, keyFile, leaf);
        Intermediates = intermediates;
        CertificateFile = certFile;
        Role = role;
    }

    /// <summary>The extended key usage <paramref name="role"/> needs is there, or the certificate names none (any use).</summary>
    public static bool HasUsage(X509Certificate2 certificate, TlsRole role)
    {
        if (certificate.Extensions[Oids.EnhancedKeyUsage] is not X509EnhancedKeyUsageExtension usage)
        {
            return true;
        }

        var wanted = role == TlsRole.Server ? Oids.ServerAuth : Oids.ClientAuth;
        foreach (var oid in usage.EnhancedKeyUsages)
        {
            if (oid.Value == wanted)
            {
                return true;
            }
        }

        return false;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Certificate?.Dispose();
        foreach (var certificate in Authorities.Concat(Intermediates))
        {
            certificate.Dispose();
        }
    }

    private static X509Certificate2Collection ReadCertificates(string file)
    {
        string pem;
        try
        {
            pem = File.ReadAllText(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TlsCredentialsException(file, $"cannot be read: {ex.Message}", ex);
        }

        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPem(pem);
        }
        catch (CryptographicException ex)
        {
            throw new TlsCredentialsException(file, $"is not a PEM certificate: {ex.Message}", ex);
        }

        if (certificates.Count == 0)
        {
            throw new TlsCredentialsException(file, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
        }

        return certificates;
    }

    private static void CheckTime(string file, X509Certificate2 certificate, DateTimeOffset now)
    {
        if (now < certificate.NotBefore.ToUniversalTime())
        {
            throw new TlsCredentialsException(file, $"'{certificate.Subject}' is not valid before {certificate.NotBefore.ToUniversalTime():u}");
        }

        if (now > certificate.NotAfter.ToUniversalTime())
        {
            throw new TlsCredentialsException(file, $"'{certificate.Subject}' expired on {certificate.NotAfter.ToUniversalTime():u}");
        }
    }

    private static X509Certificate2 WithKey(string certFile, string keyFile, X509Certificate2 leaf)
    {
        string key;
        try
        {
            key = File.ReadAllText(keyFile);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new TlsCredentialsException(keyFile, $"cannot be read: {ex.Message}", ex);
        }

        try
        {
            return X509Certificate2.CreateFromPem(leaf.ExportCertificatePem(), key);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new TlsCredentialsException(keyFile, $"is not the unencrypted private key of {certFile}: {ex.Message}", ex);
        }
    }
}

/// <summary>A TLS credential file is missing, unreadable or wrong; <see cref="File"/> names it.</summary>
public sealed class TlsCredentialsException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TlsCredentialsException()
    {
        File = string.Empty;
    }

    /// <summary>Creates the exception.</summary>
    public TlsCredentialsException(string message)
        : base(message)
    {
        File = string.Empty;
    }

    /// <summary>Creates the exception.</summary>
    public TlsCredentialsException(string message, Exception inner)
        : base(message, inner)
    {
        File = string.Empty;
    }

    /// <summary>A problem with <paramref name="file"/>; the message starts with the file's path.</summary>
    public TlsCredentialsException(string file, string problem, Exception? inner = null)
        : base($"{file} {problem}", inner)
    {
        File = file;
    }

    /// <summary>The file at fault.</summary>
    public string File { get; }
}

/// <summary>The object identifiers the checks use.</summary>
internal static class Oids
{
    public const string BasicConstraints = "2.5.29.19";
    public const string EnhancedKeyUsage = "2.5.29.37";
    public const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    public const string ClientAuth = "1.3.6.1.5.5.7.3.2";
}
