using System.Buffers.Binary;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Main;

/// <summary>The main channel over a raw socket: INIT, NAME/UUID, CHANNELS_LIST, PING/PONG, headers, shutdown.</summary>
public sealed class MainChannelTests
{
    private static async Task<(RawSpiceClient Client, uint SessionId)> OpenMainAsync(TestServer server, uint commonCaps = RawSpiceClient.GtkCommonCaps, uint mainCaps = RawSpiceClient.GtkMainCaps)
    {
        var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password, commonCaps, [mainCaps]));
        var (header, init) = await client.ReadMessageAsync();
        Assert.Equal(103, header.Type);
        Assert.Equal(32u, header.Size);
        return (client, BinaryPrimitives.ReadUInt32LittleEndian(init));
    }

    [Fact]
    public async Task Init_CarriesSessionId_ServerMouseMode_AgentNotConnected()
    {
        await using var server = TestServer.Start();
        var (client, sessionId) = await OpenMainAsync(server, mainCaps: 0);
        await using var _ = client;
        Assert.NotEqual(0u, sessionId);
        Assert.True(server.Server.Sessions.TryGet(sessionId, out var session));
        Assert.NotNull(session);
    }

    [Fact]
    public async Task NameAndUuid_FollowInit_OnlyWhenTheClientHasTheCap()
    {
        await using var server = TestServer.Start(o =>
        {
            o.Name = "wire-7";
            o.Uuid = Guid.Parse("01020304-0506-0708-090a-0b0c0d0e0f10");
        });
        var (with, _) = await OpenMainAsync(server);
        await using (with)
        {
            var (nameHeader, name) = await with.ReadMessageAsync();
            Assert.Equal(113, nameHeader.Type);
            Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(name));
            Assert.Equal("wire-7\0"u8.ToArray(), name.AsSpan(4).ToArray());
            var (uuidHeader, uuid) = await with.ReadMessageAsync();
            Assert.Equal(114, uuidHeader.Type);
            Assert.Equal(Enumerable.Range(1, 16).Select(i => (byte)i).ToArray(), uuid);
        }

        var (without, _) = await OpenMainAsync(server, mainCaps: 0);
        await using (without)
        {
            await without.SendMessageAsync(104, []);
            var (next, _) = await without.ReadMessageAsync();
            Assert.Equal(104, next.Type);
        }
    }

    [Fact]
    public async Task AttachChannels_GetsAnEmptyChannelsList_WhileOnlyMainIsServed()
    {
        await using var server = TestServer.Start();
        var (client, _) = await OpenMainAsync(server);
        await using var _ = client;
        await client.SendMessageAsync(104, []);
        var (_, list) = await client.ReadUntilAsync(104);
        Assert.Equal(new byte[] { 0, 0, 0, 0 }, list);
    }

    [Fact]
    public async Task Ping_IsAnsweredByPong_AndTheRoundTripIsMeasured()
    {
        await using var server = TestServer.Start(o => o.PingInterval = TimeSpan.FromMilliseconds(50));
        var (client, sessionId) = await OpenMainAsync(server);
        await using var _ = client;
        for (var i = 0; i < 3; i++)
        {
            var (_, ping) = await client.ReadUntilAsync(4);
            Assert.True(ping.Length >= 12);
            await client.SendMessageAsync(3, ping.AsSpan(0, 12).ToArray());
        }

        Assert.True(server.Server.Sessions.TryGet(sessionId, out var session));
        using var guard = new CancellationTokenSource(RawSpiceClient.HangGuard);
        while (session!.Pongs < 1)
        {
            await Task.Delay(10, guard.Token);
        }

        Assert.NotNull(session.LastRoundTrip);
    }

    [Fact]
    public async Task FullHeader_WhenTheClientLacksMiniHeader_WithSerialsFromOne()
    {
        await using var server = TestServer.Start();
        var client = await server.ConnectAsync();
        await using var _ = client;
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password, commonCaps: 0x01, channelCaps: [0x02]));
        Assert.False(client.MiniHeader);
        var (init, _) = await client.ReadMessageAsync();
        Assert.Equal(103, init.Type);
        Assert.Equal(1ul, init.Serial);
        var (name, _) = await client.ReadMessageAsync();
        Assert.Equal(2ul, name.Serial);
        await client.SendMessageAsync(104, []);
        var (uuid, _) = await client.ReadMessageAsync();
        Assert.Equal(3ul, uuid.Serial);
        var (list, _) = await client.ReadUntilAsync(104);
        Assert.True(list.Serial > 3);
    }

    [Fact]
    public async Task TwoClients_GetTheirOwnSessions()
    {
        await using var server = TestServer.Start();
        var (a, idA) = await OpenMainAsync(server);
        var (b, idB) = await OpenMainAsync(server);
        await using var _ = a;
        await using var __ = b;
        Assert.NotEqual(idA, idB);
        Assert.Equal(2, server.Server.Sessions.Count);
        await a.SendMessageAsync(104, []);
        await b.SendMessageAsync(104, []);
        await a.ReadUntilAsync(104);
        await b.ReadUntilAsync(104);
    }

    [Fact]
    public async Task ServerStop_SendsDisconnecting_ThenCloses()
    {
        var server = TestServer.Start();
        var (client, _) = await OpenMainAsync(server, mainCaps: 0);
        await using var _ = client;
        var stopping = server.DisposeAsync().AsTask();
        var (header, body) = await client.ReadUntilAsync(6);
        Assert.Equal(12u, header.Size);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(8)));
        Assert.True(await client.ClosedByServerAsync());
        await stopping;
    }

    [Fact]
    public async Task Notify_ReachesTheClient_WithLengthAndTrailingNul()
    {
        await using var server = TestServer.Start();
        var (client, sessionId) = await OpenMainAsync(server, mainCaps: 0);
        await using var _ = client;
        Assert.True(server.Server.Sessions.TryGet(sessionId, out var session));
        Assert.True(session!.Notify(Channels.NotifySeverity.Warn, Channels.NotifyVisibility.High, "hello"));
        var (header, body) = await client.ReadUntilAsync(7);
        Assert.Equal(24u + 5 + 1, header.Size);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(8)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(12)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(20)));
        Assert.Equal("hello\0"u8.ToArray(), body.AsSpan(24).ToArray());
    }

    [Fact]
    public async Task ClientDisconnecting_EndsTheSession()
    {
        await using var server = TestServer.Start();
        var (client, _) = await OpenMainAsync(server, mainCaps: 0);
        await using var _ = client;
        await client.SendMessageAsync(6, new byte[12]);
        Assert.True(await client.ClosedByServerAsync());
    }
}

/// <summary>protocol.md §7.2, main channel: hostile messages end one session at most, never the server or another client.</summary>
public sealed class MainChannelHostileInputTests
{
    private static async Task<RawSpiceClient> OpenAsync(TestServer server)
    {
        var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password, channelCaps: [0]));
        await client.ReadUntilAsync(103);
        return client;
    }

    private static async Task BystanderStillWorksAsync(RawSpiceClient bystander)
    {
        await bystander.SendMessageAsync(104, []);
        await bystander.ReadUntilAsync(104);
    }

    // CVE-2016-9577: a 1 MiB message of any type was read into a fixed buffer.
    [Theory]
    [InlineData((ushort)104)]
    [InlineData((ushort)107)]
    [InlineData((ushort)3)]
    [InlineData((ushort)9999)]
    public async Task Cve2016_9577_OneMebibyteMessage_ClosesThatChannelOnly(ushort type)
    {
        await using var server = TestServer.Start();
        await using var bystander = await OpenAsync(server);
        await using var attacker = await OpenAsync(server);
        await attacker.SendMessageAsync(type, [], sizeOverride: 1024 * 1024);
        Assert.True(await attacker.ClosedByServerAsync());
        await BystanderStillWorksAsync(bystander);
    }

    [Fact]
    public async Task AgentDataWithoutAgentStartOrTokens_IsAbsorbed_AndDisconnectsNobody()
    {
        await using var server = TestServer.Start();
        await using var bystander = await OpenAsync(server);
        await using var client = await OpenAsync(server);
        for (var i = 0; i < 20; i++)
        {
            await client.SendMessageAsync(107, new byte[2048]);
        }

        await BystanderStillWorksAsync(client);
        await BystanderStillWorksAsync(bystander);
    }

    [Fact]
    public async Task AgentDataOverTwoKilobytes_IsAViolation()
    {
        await using var server = TestServer.Start();
        await using var client = await OpenAsync(server);
        await client.SendMessageAsync(107, new byte[2049]);
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task MigrateEndOutsideAMigration_IsIgnored()
    {
        await using var server = TestServer.Start();
        await using var client = await OpenAsync(server);
        await client.SendMessageAsync(109, []);
        await client.SendMessageAsync(102, []);
        await client.SendMessageAsync(103, []);
        await BystanderStillWorksAsync(client);
    }

    [Theory]
    [InlineData((ushort)0)]
    [InlineData((ushort)7)]
    [InlineData((ushort)113)]
    [InlineData((ushort)0xFFFF)]
    public async Task UnknownMessageType_ClosesThatChannel(ushort type)
    {
        await using var server = TestServer.Start();
        await using var bystander = await OpenAsync(server);
        await using var client = await OpenAsync(server);
        await client.SendMessageAsync(type, [1, 2, 3]);
        Assert.True(await client.ClosedByServerAsync());
        await BystanderStillWorksAsync(bystander);
    }

    [Theory]
    [InlineData((ushort)1, 3)]
    [InlineData((ushort)3, 11)]
    [InlineData((ushort)105, 1)]
    [InlineData((ushort)106, 0)]
    public async Task TruncatedFixedPart_ClosesThatChannel(ushort type, int size)
    {
        await using var server = TestServer.Start();
        await using var client = await OpenAsync(server);
        await client.SendMessageAsync(type, new byte[size]);
        Assert.True(await client.ClosedByServerAsync());
    }

    [Fact]
    public async Task FlushMarkOutsideAMigration_ClosesThatChannel()
    {
        await using var server = TestServer.Start();
        await using var client = await OpenAsync(server);
        await client.SendMessageAsync(4, []);
        Assert.True(await client.ClosedByServerAsync());
    }
}
