using System.Net.Sockets;
using System.Text.Json.Nodes;
using NetWire.Control.Migration;
using NetWire.Core.Tls;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// The state stream over mutual TLS (<c>--migration-x509-dir</c>): a target refuses a plaintext
/// stream and a source whose certificate another CA signed before it reads any state, counts
/// and logs each, keeps waiting, and then adopts the state from a source its CA signed; a source
/// refuses a target that does not speak TLS.
/// </summary>
public sealed class MigrationTlsTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static DateTimeOffset Now => DateTimeOffset.UtcNow;

    private MigrationTls Target() => new(pki.Good,
        new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now), requirePeerCertificate: true),
        new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Client, Now)));

    private MigrationTls Source() => new(pki.Good, null, new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Client, Now)));

    /// <summary>A source that trusts the target's CA but presents a certificate of the foreign CA.</summary>
    private MigrationTls ForeignSource()
    {
        var credentials = X509Credentials.Load(pki.ForeignDir, TlsRole.Client, Now);
        credentials.Authorities.Clear();
        credentials.Authorities.AddRange(X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now).Authorities);
        return new MigrationTls(pki.ForeignDir, null, new TlsSettings(credentials));
    }

    [Fact]
    public async Task Target_RefusesPlaintextAndAForeignSourceFirst_ThenAdoptsFromItsOwn()
    {
        await using var b = Appliance.Start(incoming: true, migrationTls: Target());
        await using var qmpB = await b.QmpAsync();

        // A plaintext source: refused from its first bytes, and told why in a plaintext reply.
        await using (var plain = Appliance.Start())
        await using (var qmp = await plain.QmpAsync())
        {
            await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
            var end = await qmp.WaitMigrationEndAsync();
            Assert.Equal("failed", (string?)end["status"]);
            Assert.Contains("mutual TLS only", (string?)end["error-desc"], StringComparison.Ordinal);
        }

        Assert.Equal(1, b.Incoming!.TlsRefused);

        // A source of another CA: its certificate is refused in the handshake.
        await using (var foreign = Appliance.Start(migrationTls: ForeignSource()))
        await using (var qmp = await foreign.QmpAsync())
        {
            await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
            Assert.Equal("failed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
        }

        await Qmp.UntilAsync(() => b.Incoming!.TlsRefused == 2, "the foreign source's refusal to be counted");
        Assert.False(b.Incoming!.Adopted.IsCompleted);
        var incoming = (await qmpB.OkAsync("query-migrate"))["incoming"]!;
        Assert.True((bool)incoming["tls"]!);
        Assert.Equal(2, (int)incoming["tls-refused"]!);

        // The target kept waiting: the real source's state is adopted.
        await using var a = Appliance.Start(migrationTls: Source());
        await using var qmpA = await a.QmpAsync();
        await qmpA.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var done = await qmpA.WaitMigrationEndAsync();
        Assert.True((string?)done["status"] == "completed", done.ToJsonString());
        var adoption = await b.Incoming.Adopted.WaitAsync(TimeSpan.FromSeconds(30), Qmp.Token);
        Assert.Contains("spice", adoption.Adopted);
        Assert.Equal(2, b.Incoming.Refused);
    }

    [Fact]
    public async Task Target_AnswersARawPlaintextStream_WithoutReadingIt()
    {
        await using var b = Appliance.Start(incoming: true, migrationTls: Target());
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(b.Incoming!.LocalEndPoint, Qmp.Token);
        await socket.SendAsync("NWST\u0001\u0000\u0001\u0000"u8.ToArray(), Qmp.Token);
        await using var stream = new NetworkStream(socket);
        var (accepted, text) = await MigrationWire.ReadReplyAsync(stream, Qmp.Token);
        Assert.False(accepted);
        Assert.Contains("takes the state over mutual TLS only", text, StringComparison.Ordinal);
        Assert.Contains("'NWST", text, StringComparison.Ordinal);
        Assert.Equal(1, b.Incoming.TlsRefused);
    }

    [Fact]
    public async Task Source_RefusesATargetThatDoesNotSpeakTls()
    {
        await using var b = Appliance.Start(incoming: true);
        await using var a = Appliance.Start(migrationTls: Source());
        await using var qmp = await a.QmpAsync();
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("failed", (string?)end["status"]);
        Assert.Contains("127.0.0.1", (string?)end["error-desc"], StringComparison.Ordinal);
        Assert.False(b.Incoming!.Adopted.IsCompleted);
    }

    [Fact]
    public async Task TargetWithoutAClientCertificate_CannotBeASource_AndSaysWhy()
    {
        await using var b = Appliance.Start(incoming: true, migrationTls: Target());
        await using var c = Appliance.Start(migrationTls: new MigrationTls(pki.Good, null, null));
        await using var qmp = await c.QmpAsync();
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("failed", (string?)end["status"]);
        Assert.Contains("has no client-cert.pem", (string?)end["error-desc"], StringComparison.Ordinal);
    }
}
