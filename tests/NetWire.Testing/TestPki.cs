using System.Globalization;

namespace NetWire.Testing;

/// <summary>
/// Certificates made with the openssl command for TLS tests, in QEMU's x509-dir layout:
/// a CA, and a directory per name with <c>ca-cert.pem</c>, <c>server-cert.pem</c>,
/// <c>server-key.pem</c>, <c>client-cert.pem</c> and <c>client-key.pem</c>. Server certificates
/// carry subjectAltName IP:127.0.0.1 and DNS:localhost (what spice-gtk and .NET check for a host
/// name) and extendedKeyUsage serverAuth; client certificates clientAuth. RSA 2048, as QEMU's
/// documentation makes them.
/// </summary>
public sealed class TestPki : IDisposable
{
    private readonly string _caKey;
    private int _serial = 0x1000;

    private TestPki(string root, string name)
    {
        Root = root;
        Name = name;
        CaCert = Path.Combine(root, "ca-cert.pem");
        _caKey = Path.Combine(root, "ca-key.pem");
    }

    /// <summary>The folder everything is written to.</summary>
    public string Root { get; }

    /// <summary>The CA's common name.</summary>
    public string Name { get; }

    /// <summary>The CA certificate (PEM).</summary>
    public string CaCert { get; }

    /// <summary>Makes a CA called <paramref name="name"/> in a new temporary folder.</summary>
    public static async Task<TestPki> CreateAsync(string name = "NetWire Test CA")
    {
        HostRequirements.RequireCommand("openssl");
        var root = Directory.CreateTempSubdirectory("nwpki-").FullName;
        var pki = new TestPki(root, name);
        try
        {
            await pki.OpenSslAsync("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", pki._caKey, "-out", pki.CaCert, "-days", "3650",
                "-subj", $"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
            return pki;
        }
        catch
        {
            pki.Dispose();
            throw;
        }
    }

    /// <summary>
    /// An x509 directory <paramref name="dir"/> (under <see cref="Root"/>) with this CA's
    /// certificate and a server and a client certificate it signed, subject
    /// <c>/CN=<paramref name="commonName"/></c>; <paramref name="days"/> -1 makes them expired.
    /// </summary>
    public async Task<string> X509DirAsync(string dir, string commonName, int days = 365)
    {
        var path = Path.Combine(Root, dir);
        Directory.CreateDirectory(path);
        File.Copy(CaCert, Path.Combine(path, "ca-cert.pem"), overwrite: true);
        await IssueAsync(path, "server", commonName, "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost", days);
        await IssueAsync(path, "client", commonName + "-client", "clientAuth", null, days);
        return path;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A process still holding a file: the temporary folder stays behind.
        }
    }

    private async Task IssueAsync(string dir, string role, string commonName, string usage, string? altNames, int days)
    {
        var key = Path.Combine(dir, $"{role}-key.pem");
        var csr = Path.Combine(dir, $"{role}.csr");
        var ext = Path.Combine(dir, $"{role}.ext");
        await File.WriteAllTextAsync(ext, $"basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n{(altNames is null ? string.Empty : altNames + "\n")}");
        await OpenSslAsync("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", $"/CN={commonName}");
        var serial = "0x" + Interlocked.Increment(ref _serial).ToString("X", CultureInfo.InvariantCulture);
        await OpenSslAsync("x509", "-req", "-in", csr, "-CA", CaCert, "-CAkey", _caKey, "-set_serial", serial,
            "-days", days.ToString(CultureInfo.InvariantCulture), "-extfile", ext, "-out", Path.Combine(dir, $"{role}-cert.pem"));
        File.Delete(csr);
        File.Delete(ext);
    }

    private async Task OpenSslAsync(params string[] args)
    {
        var result = await ProcessRunner.RunAsync("openssl", args, TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException($"openssl {string.Join(' ', args)} failed ({result.ExitCode}): {result.Stderr}");
        }
    }
}
