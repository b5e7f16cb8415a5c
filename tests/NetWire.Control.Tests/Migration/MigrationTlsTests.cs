using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control.Migration;
using NetWire.Core.State;
using NetWire.Core.Tls;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// The state stream over mutual TLS (<c>--migration-x509-dir</c>): a target refuses a plaintext
/// stream, a source without a certificate and one whose certificate another CA signed before it
/// reads any state, counts and logs each, drops a handshake that never finishes at the header
/// deadline, keeps waiting, and then adopts the state from a source its CA signed; a source
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
    public async Task Target_RefusesATlsSourceWithoutACertificate_DropsAStalledHandshake_AndKeepsWaiting()
    {
        var tls = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now), requirePeerCertificate: true);
        await using var incoming = new IncomingMigration(new IPEndPoint(IPAddress.Loopback, 0), new StateRegistry(), null, NullLogger.Instance, tls)
        {
            HeaderTimeout = TimeSpan.FromSeconds(1),
        };
        incoming.Start();

        // TLS that trusts the target but presents no certificate: refused in the handshake.
        var anonymous = new TlsSettings(X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now));
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(incoming.LocalEndPoint, Qmp.Token);
            try
            {
                await using var secured = await TlsHandshake.ConnectAsync(new NetworkStream(socket), "127.0.0.1", anonymous, Qmp.Token);

                // TLS 1.3 ends the client's handshake before the server has checked it: the refusal is the close.
                Assert.Equal(0, await secured.ReadAsync(new byte[1], Qmp.Token));
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
            }
        }

        await Qmp.UntilAsync(() => incoming.TlsRefused == 1, "the certificate-less source's refusal to be counted");

        // A ClientHello that never finishes: dropped at the header deadline, like a silent peer.
        using (var stalled = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await stalled.ConnectAsync(incoming.LocalEndPoint, Qmp.Token);
            await stalled.SendAsync(new byte[] { TlsHandshake.HandshakeRecord, 0x03, 0x01, 0x02, 0x00, 0x01 }, Qmp.Token);
            Assert.Equal(0, await stalled.ReceiveAsync(new byte[16], SocketFlags.None, Qmp.Token));
        }

        Assert.Equal(1, incoming.Silent);
        Assert.Equal(1, incoming.TlsRefused);
        Assert.Equal(1, incoming.Refused);

        // Still waiting: a source with its certificate is read and adopted.
        var source = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Client, Now));
        using var good = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await good.ConnectAsync(incoming.LocalEndPoint, Qmp.Token);
        await using var stream = await TlsHandshake.ConnectAsync(new NetworkStream(good), "127.0.0.1", source, Qmp.Token);
        await stream.WriteAsync(StateStream.Build([]), Qmp.Token);
        var (accepted, text) = await MigrationWire.ReadReplyAsync(stream, Qmp.Token);
        Assert.True(accepted, text);
        await incoming.Adopted.WaitAsync(TimeSpan.FromSeconds(30), Qmp.Token);
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
