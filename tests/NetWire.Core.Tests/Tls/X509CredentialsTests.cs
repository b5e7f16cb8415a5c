using System.Net.Security;
using NetWire.Core.Tls;
using NetWire.Testing;

namespace NetWire.Core.Tests.Tls;

/// <summary>
/// QEMU's x509-dir layout read and checked at start: good credentials load; an expired, foreign,
/// mismatched, missing or malformed file is refused with that file's name in the message.
/// </summary>
public sealed class X509CredentialsTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static DateTimeOffset Now => DateTimeOffset.UtcNow;

    [Fact]
    public void GoodDirectory_LoadsBothRoles_WithTheirKeys()
    {
        using var server = X509Credentials.Load(pki.Good, TlsRole.Server, Now);
        Assert.True(server.Certificate!.HasPrivateKey);
        Assert.Equal("CN=netwire-a", server.Certificate.Subject);
        Assert.Single(server.Authorities);
        using var client = X509Credentials.Load(pki.Good, TlsRole.Client, Now);
        Assert.Equal("CN=netwire-a-client", client.Certificate!.Subject);
    }

    [Fact]
    public void ExpiredServerCertificate_IsRefused_NamingIt()
    {
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(pki.Expired, TlsRole.Server, Now));
        Assert.Equal(Path.Combine(pki.Expired, "server-cert.pem"), ex.File);
        Assert.Contains("expired on", ex.Message, StringComparison.Ordinal);
        Assert.StartsWith(ex.File, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void KeyOfAnotherCertificate_IsRefused_NamingTheKey()
    {
        var dir = pki.Copy(pki.Good);
        File.Copy(Path.Combine(dir, "client-key.pem"), Path.Combine(dir, "server-key.pem"), overwrite: true);
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(dir, TlsRole.Server, Now));
        Assert.Equal(Path.Combine(dir, "server-key.pem"), ex.File);
        Assert.Contains("is not the unencrypted private key of", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CertificateOfAnotherCa_IsRefused_AsNotSignedByTheCaFile()
    {
        var dir = pki.Copy(pki.ForeignDir);
        File.Copy(pki.Pki.CaCert, Path.Combine(dir, "ca-cert.pem"), overwrite: true);
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(dir, TlsRole.Server, Now));
        Assert.Equal(Path.Combine(dir, "server-cert.pem"), ex.File);
        Assert.Contains("is not signed by " + Path.Combine(dir, "ca-cert.pem"), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingKey_IsRefused_NamingIt()
    {
        var dir = pki.Copy(pki.Good);
        File.Delete(Path.Combine(dir, "server-key.pem"));
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(dir, TlsRole.Server, Now));
        Assert.Equal(Path.Combine(dir, "server-key.pem"), ex.File);
        Assert.Contains("cannot be read", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LeafCertificateAsCaFile_IsRefused_AsNotACa()
    {
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.LoadAuthorities(Path.Combine(pki.Good, "server-cert.pem"), Now));
        Assert.Contains("is not a CA certificate", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ServerCertificateAsClientCertificate_IsRefused_ForItsKeyUsage()
    {
        var dir = pki.Copy(pki.Good);
        File.Copy(Path.Combine(dir, "server-cert.pem"), Path.Combine(dir, "client-cert.pem"), overwrite: true);
        File.Copy(Path.Combine(dir, "server-key.pem"), Path.Combine(dir, "client-key.pem"), overwrite: true);
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(dir, TlsRole.Client, Now));
        Assert.Equal(Path.Combine(dir, "client-cert.pem"), ex.File);
        Assert.Contains("does not allow TLS client authentication", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotPem_IsRefused_NamingTheFile()
    {
        var dir = pki.Copy(pki.Good);
        File.WriteAllText(Path.Combine(dir, "ca-cert.pem"), "not a certificate\n");
        var ex = Assert.Throws<TlsCredentialsException>(() => X509Credentials.Load(dir, TlsRole.Server, Now));
        Assert.Equal(Path.Combine(dir, "ca-cert.pem"), ex.File);
        Assert.Contains("holds no PEM certificate", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CertSubject_MatchesInTheCertificatesOrder_IgnoringCaseAndSpaces()
    {
        using var server = X509Credentials.Load(pki.Good, TlsRole.Server, Now);
        Assert.True(TlsPeerCheck.SubjectMatches(server.Certificate!.SubjectName, "CN=netwire-a"));
        Assert.True(TlsPeerCheck.SubjectMatches(server.Certificate!.SubjectName, " cn = NETWIRE-A "));
        Assert.False(TlsPeerCheck.SubjectMatches(server.Certificate!.SubjectName, "CN=netwire-b"));
        Assert.False(TlsPeerCheck.SubjectMatches(server.Certificate!.SubjectName, "CN=netwire-a,O=x"));
        Assert.Throws<FormatException>(() => TlsPeerCheck.ParseSubject("CN"));
        Assert.Throws<FormatException>(() => TlsPeerCheck.ParseSubject("XX=1"));
        Assert.Equal(("2.5.4.10", "a,b"), TlsPeerCheck.ParseSubject(@"CN=x,O=a\,b")[1]);
    }

    [Fact]
    public void CipherList_TakesOpenSslAndIanaNames_AndRefusesKeywords()
    {
        Assert.Equal(
            [TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TlsCipherSuite.TLS_AES_256_GCM_SHA384],
            TlsCipherList.Parse("ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_256_GCM_SHA384"));
        var ex = Assert.Throws<FormatException>(() => TlsCipherList.Parse("HIGH:!aNULL"));
        Assert.Contains("'HIGH'", ex.Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => TlsCipherList.Parse(" : "));
        Assert.Throws<FormatException>(() => TlsCipherList.Parse("TLS_NOT_A_SUITE"));
    }
}
