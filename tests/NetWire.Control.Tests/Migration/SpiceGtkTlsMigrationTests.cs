using System.Net;
using NetWire.Control.Migration;
using NetWire.Core.Tls;
using NetWire.Spice;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// spice-gtk 0.42 linked to appliance A over TLS only follows a migration announced with
/// <c>tls-port</c> and <c>cert-subject</c> (no plaintext port: it goes out as 0, which spice-gtk
/// reads as none) to appliance B's TLS port, checking B's certificate by its subject, while the
/// appliance state goes from A to B over mutual TLS.
/// </summary>
[Trait("Category", "Host")]
public sealed class SpiceGtkTlsMigrationTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static DateTimeOffset Now => DateTimeOffset.UtcNow;

    private static Action<SpiceServerOptions> TlsPort(string x509Dir) => options =>
    {
        options.TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
        options.Tls = new TlsSettings(X509Credentials.Load(x509Dir, TlsRole.Server, Now));
    };

    [Fact]
    public async Task ClientOnTls_FollowsAMigrationAnnouncedWithTlsPortAndSubject()
    {
        GtkMigrationClient.Require();
        var stream = new MigrationTls(pki.Good,
            new TlsSettings(X509Credentials.Load(pki.GoodB, TlsRole.Server, Now), requirePeerCertificate: true),
            new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Client, Now)));
        await using var a = Appliance.Start(configure: TlsPort(pki.Good), migrationTls: stream with { Accept = null });
        await using var b = Appliance.Start(incoming: true, configure: TlsPort(pki.GoodB), migrationTls: stream);
        var tlsA = a.Spice.TlsEndPoint!.Port;
        var tlsB = b.Spice.TlsEndPoint!.Port;

        await using var client = await GtkMigrationClient.ConnectTlsAsync(tlsA, pki.Pki.CaCert, Appliance.Password);

        // The client reports its main channel open on the link result, a moment before A lists it.
        await Qmp.UntilAsync(() => a.Spice.LinkedChannels.Count == 1, "A to list the client's channel");
        Assert.True(Assert.Single(a.Spice.LinkedChannels).Tls);
        await using var qmp = await a.QmpAsync();
        await qmp.OkAsync("client_migrate_info", new()
        {
            ["protocol"] = "spice", ["hostname"] = "127.0.0.1", ["tls-port"] = tlsB, ["cert-subject"] = "CN=netwire-b",
        });
        var done = await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);
        Assert.Equal(1, (int)done["data"]!["connected"]!);
        await Qmp.UntilAsync(() => b.Spice.LinkedChannels.Count == 1, "B to list the parked channel");
        Assert.True(Assert.Single(b.Spice.LinkedChannels).Tls);
        var parked = Assert.Single(b.Spice.Sessions.Snapshot());

        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var end = await qmp.WaitMigrationEndAsync();
        Assert.True((string?)end["status"] == "completed", end.ToJsonString());
        Assert.Equal(0, b.Incoming!.Refused);

        var result = await client.ResultAsync();
        Assert.True(result.ExitCode == 0, client.Process.FormattedOutput);
        Assert.Equal(tlsB, result.Port);
        Assert.Contains("migrating", result.States, StringComparison.Ordinal);
        Assert.Contains($"port=None tls-port={tlsB}", result.Line, StringComparison.Ordinal);
        Assert.True(await parked.Started, "B never started the migrated session");
        await Qmp.UntilAsync(() => a.Spice.Sessions.Count == 0, "A's session to close");
    }
}
