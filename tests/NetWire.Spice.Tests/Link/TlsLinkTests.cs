using System.Buffers.Binary;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Link;

/// <summary>
/// The TLS port beside the plaintext one: a link over TLS, plaintext on the TLS port and TLS on
/// the plaintext port (refused and counted), a handshake that never finishes (bounded by the
/// link timeout), each followed by good links on both ports, and the channel policy answering
/// NEED_SECURED / NEED_UNSECURED.
/// </summary>
public sealed class TlsLinkTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    [Fact]
    public async Task LinkOverTls_ReachesInit_AndTheChannelIsListedAsTls()
    {
        await using var server = TestServer.StartTls(pki.Good);
        await using var client = await RawSpiceClient.ConnectTlsAsync(server.TlsEndPoint, pki.Pki.CaCert);
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password));
        var init = await client.ReadUntilAsync(MainMessages.Init);
        var channel = Assert.Single(server.Server.LinkedChannels);
        Assert.True(channel.Tls);
        Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(init.Body), channel.ConnectionId);

        await using var plain = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await plain.LinkAsync(0, 1, TestServer.Password));
        await plain.ReadUntilAsync(MainMessages.Init);
        Assert.Equal([true, false], server.Server.LinkedChannels.Select(c => c.Tls));
    }

    [Fact]
    public async Task PlaintextOnTheTlsPort_IsClosedUnanswered_AndCounted()
    {
        await using var server = TestServer.StartTls(pki.Good);
        await using var client = await RawSpiceClient.ConnectAsync(server.TlsEndPoint);
        await client.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        Assert.Null(await client.ReadExactlyOrNullAsync(1));
        await Poll.UntilAsync(() => server.Server.Counters.Of(LinkOutcome.TlsPlaintext) == 1, "link outcome TlsPlaintext counted once");
        Assert.Empty(server.Server.LinkedChannels);
        await AssertBothPortsLinkAsync(server);
    }

    [Fact]
    public async Task TlsOnThePlaintextPort_GetsInvalidMagic_AndIsCountedAsSuch()
    {
        await using var server = TestServer.StartTls(pki.Good);
        await using var client = await server.ConnectAsync();

        // The start of a ClientHello: handshake record, TLS 1.0 record version, 512 bytes.
        await client.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0, 0, 0, 0, 0 });
        Assert.Equal(SpiceLinkErr.InvalidMagic, await client.ReadErrorReplyAsync());
        await Poll.UntilAsync(() => server.Server.Counters.Of(LinkOutcome.TlsOnPlainPort) == 1, "link outcome TlsOnPlainPort counted once");
        Assert.Equal(1, server.Server.Counters.Refused(SpiceLinkErr.InvalidMagic));
        await AssertBothPortsLinkAsync(server);
    }

    [Fact]
    public async Task HandshakeThatNeverFinishes_IsDroppedAtTheLinkTimeout()
    {
        await using var server = TestServer.StartTls(pki.Good, o => o.LinkTimeout = TimeSpan.FromSeconds(1));
        await using var client = await RawSpiceClient.ConnectAsync(server.TlsEndPoint);
        var started = System.Diagnostics.Stopwatch.StartNew();
        await client.SendAsync(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 });
        Assert.True(await client.ClosedByServerAsync());
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(0.8), TimeSpan.FromSeconds(15));
        await Poll.UntilAsync(() => server.Server.Counters.Of(LinkOutcome.TimedOut) == 1, "link outcome TimedOut counted once");
        await AssertBothPortsLinkAsync(server);
    }

    [Fact]
    public async Task TlsChannelMain_OnThePlaintextPort_GetsNeedSecured_OverTlsItLinks()
    {
        await using var server = TestServer.StartTls(pki.Good, o => o.ChannelSecurity = ChannelSecurity.Parse(["main"], []));
        await using (var plain = await server.ConnectAsync())
        {
            await plain.SendAsync(RawSpiceClient.LinkBytes(0, 1));
            Assert.Equal(SpiceLinkErr.NeedSecured, await plain.ReadErrorReplyAsync());
            Assert.True(await plain.ClosedByServerAsync());
        }

        await using var secure = await RawSpiceClient.ConnectTlsAsync(server.TlsEndPoint, pki.Pki.CaCert);
        Assert.Equal(SpiceLinkErr.Ok, await secure.LinkAsync(0, 1, TestServer.Password));
        Assert.Equal(1, server.Server.Counters.Refused(SpiceLinkErr.NeedSecured));
    }

    [Fact]
    public async Task PlaintextChannelDefault_OverTls_GetsNeedUnsecured()
    {
        await using var server = TestServer.StartTls(pki.Good, o => o.ChannelSecurity = ChannelSecurity.Parse([], ["default"]));
        await using var secure = await RawSpiceClient.ConnectTlsAsync(server.TlsEndPoint, pki.Pki.CaCert);
        await secure.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        Assert.Equal(SpiceLinkErr.NeedUnsecured, await secure.ReadErrorReplyAsync());
        await using var plain = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await plain.LinkAsync(0, 1, TestServer.Password));
    }

    [Theory]
    [InlineData(new[] { "main" }, new[] { "main" })]
    [InlineData(new[] { "default" }, new[] { "default" })]
    [InlineData(new[] { "mian" }, new string[0])]
    public void ContradictoryOrUnknownChannelNames_AreRefused(string[] tls, string[] plaintext) =>
        Assert.Throws<FormatException>(() => ChannelSecurity.Parse(tls, plaintext));

    [Fact]
    public void Policy_ChecksEachChannelAgainstItsTransport()
    {
        var policy = ChannelSecurity.Parse(["default"], ["tunnel"]);
        Assert.Equal(SpiceLinkErr.NeedSecured, policy.Check((byte)SpiceChannelType.Main, secure: false));
        Assert.Equal(SpiceLinkErr.Ok, policy.Check((byte)SpiceChannelType.Main, secure: true));
        Assert.Equal(SpiceLinkErr.NeedUnsecured, policy.Check((byte)SpiceChannelType.Tunnel, secure: true));
        Assert.Equal(SpiceLinkErr.Ok, policy.Check((byte)SpiceChannelType.Tunnel, secure: false));
        Assert.Equal([("default", ChannelTransport.Tls), ("tunnel", ChannelTransport.Plaintext)], policy.Describe());
    }

    /// <summary>The server lives on after bad input: a client links on each port.</summary>
    private async Task AssertBothPortsLinkAsync(TestServer server)
    {
        await using var secure = await RawSpiceClient.ConnectTlsAsync(server.TlsEndPoint, pki.Pki.CaCert);
        Assert.Equal(SpiceLinkErr.Ok, await secure.LinkAsync(0, 1, TestServer.Password));
        await using var plain = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await plain.LinkAsync(0, 1, TestServer.Password));
    }
}
