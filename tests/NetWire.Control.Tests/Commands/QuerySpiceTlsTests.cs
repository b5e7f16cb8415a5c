using System.Net;
using NetWire.Control.Tests.Migration;
using NetWire.Core.Tls;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Control.Tests.Commands;

/// <summary>
/// query-spice on a server with both ports (docs/control.md): the plaintext and the TLS port,
/// the channel policy, every linked channel with its own transport, and the link outcomes of
/// plaintext on the TLS port and of a channel the policy holds to TLS linked on the plain port.
/// </summary>
public sealed class QuerySpiceTlsTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    [Fact]
    public async Task BothPorts_ListEachChannelsTransport_ThePolicy_AndTheTlsOutcomes()
    {
        await using var appliance = Appliance.Start(configure: o =>
        {
            o.TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
            o.Tls = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, DateTimeOffset.UtcNow));
            o.ChannelSecurity = ChannelSecurity.Parse([], ["tunnel"]);

            // Not what is tested: room for a TLS handshake and key generation on a busy machine.
            o.LinkTimeout = TimeSpan.FromSeconds(30);
        });
        await using var qmp = await appliance.QmpAsync();
        var tlsEndPoint = appliance.Spice.TlsEndPoint!;

        await using var secure = await RawSpiceClient.ConnectTlsAsync(tlsEndPoint, pki.Pki.CaCert);
        Assert.Equal(SpiceLinkErr.Ok, await secure.LinkAsync(0, 1, Appliance.Password));
        await using var plain = await RawSpiceClient.ConnectAsync(appliance.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await plain.LinkAsync(0, 1, Appliance.Password));
        await using (var wrongPort = await RawSpiceClient.ConnectAsync(tlsEndPoint))
        {
            await wrongPort.SendAsync(RawSpiceClient.LinkBytes(0, 1));
            Assert.Null(await wrongPort.ReadExactlyOrNullAsync(1));
        }

        await Poll.UntilAsync(() => appliance.Spice.LinkedChannels.Count == 2 && appliance.Spice.Counters.Of(LinkOutcome.TlsPlaintext) == 1, "two linked channels and the plaintext one counted");
        var spice = await qmp.OkAsync("query-spice");
        Assert.Equal(appliance.SpicePort, (int)spice["port"]!);
        Assert.Equal(tlsEndPoint.Port, (int)spice["tls-port"]!);
        Assert.Equal("any", (string?)spice["channel-security"]!["default"]);
        Assert.Equal("plaintext", (string?)spice["channel-security"]!["tunnel"]);
        var channels = spice["channels"]!.AsArray();
        Assert.Equal(2, channels.Count);
        var byPort = channels.ToDictionary(c => (string)c!["port"]!, c => (bool)c!["tls"]!);
        Assert.True(byPort[Port(secure)]);
        Assert.False(byPort[Port(plain)]);
        Assert.Equal(2, (int)spice["links"]!["linked"]!);
        Assert.Equal(1, (int)spice["links"]!["tls-plaintext"]!);
        Assert.Equal(0, (int)spice["links"]!["tls-failed"]!);
    }

    private static string Port(RawSpiceClient client) =>
        ((IPEndPoint)client.Socket.LocalEndPoint!).Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
