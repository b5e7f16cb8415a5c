using Xunit;

namespace NetWire.Testing;

/// <summary>
/// Certificates shared by the TLS tests of one class: a CA with two good directories ("good",
/// CN=netwire-a, and "good-b", CN=netwire-b), an expired one ("expired"), and a foreign CA with
/// its own directory ("foreign", CN=netwire-a), all made with openssl.
/// </summary>
public sealed class TlsPkiFixture : IAsyncLifetime
{
    public TestPki Pki { get; private set; } = null!;

    public TestPki Foreign { get; private set; } = null!;

    public string Good { get; private set; } = null!;

    public string GoodB { get; private set; } = null!;

    public string Expired { get; private set; } = null!;

    public string ForeignDir { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        Pki = await TestPki.CreateAsync();
        Foreign = await TestPki.CreateAsync("Foreign CA");
        Good = await Pki.X509DirAsync("good", "netwire-a");
        GoodB = await Pki.X509DirAsync("good-b", "netwire-b");
        Expired = await Pki.X509DirAsync("expired", "netwire-old", days: -1);
        ForeignDir = await Foreign.X509DirAsync("foreign", "netwire-a");
    }

    /// <summary>A fresh copy of <paramref name="source"/> that a test may change.</summary>
    public string Copy(string source)
    {
        var copy = Path.Combine(Pki.Root, "copy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        return copy;
    }

    public ValueTask DisposeAsync()
    {
        Pki?.Dispose();
        Foreign?.Dispose();
        return ValueTask.CompletedTask;
    }
}
