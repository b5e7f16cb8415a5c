using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NetWire.Core.Net;
using NetWire.Spice.Channels;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// The server's tunnel channel against a client that sends exactly what each test says: the
/// opening, services and addresses, and every kind of bad input (protocol.md §7.3): each is a channel
/// error that ends that channel only, counted, while the server keeps serving.
/// </summary>
public sealed class TunnelProtocolTests
{
    private static byte[] Generic(uint id, uint group, ushort port, string name = "web") =>
        TunnelMessages.BuildServiceAdd(new TunnelService(TunnelMessages.ServiceGeneric, id, group, port, name, "test service", 0));

    private static (uint Id, IPAddress Address) ParseIpMap(byte[] body)
    {
        Assert.Equal(10, body.Length);
        Assert.Equal(TunnelMessages.IpTypeIpv4, BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(4)));
        return (BinaryPrimitives.ReadUInt32LittleEndian(body), new IPAddress(body.AsSpan(6, 4)));
    }

    private static async Task AssertChannelErrorAsync(TunnelServer server, RawTunnelClient client, long errorsBefore)
    {
        Assert.True(await client.ClosedByServerAsync(), "the server kept the channel open");
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (server.Gateway.Counters.ProtocolErrors <= errorsBefore && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        Assert.True(server.Gateway.Counters.ProtocolErrors > errorsBefore, "the violation was not counted");

        // The server still serves: a new tunnel links and gets a service address.
        await using var again = await RawTunnelClient.ConnectAsync(server);
        await again.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (id, _) = ParseIpMap(await again.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        Assert.Equal(1u, id);
    }

    [Fact]
    public async Task Link_SendsInitWithSocketAndDataLimits()
    {
        await using var server = TunnelServer.Start(o => o.MaxSockets = 7);
        await using var client = await RawTunnelClient.ConnectAsync(server);
        Assert.Equal(6, client.Init.Body.Length);
        Assert.Equal(7, BinaryPrimitives.ReadUInt16LittleEndian(client.Init.Body));
        Assert.Equal((uint)server.Gateway.Options.MaxDataSize, BinaryPrimitives.ReadUInt32LittleEndian(client.Init.Body.AsSpan(2)));
    }

    [Fact]
    public async Task ServiceAdd_GroupsShareAnAddress_FromJustPastTheDhcpPool()
    {
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80, "a"));
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(2, 1, 443, "b"));
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(3, 2, 80, "c"));
        var maps = new Dictionary<uint, IPAddress>();
        for (var i = 0; i < 3; i++)
        {
            var (id, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
            maps[id] = address;
        }

        Assert.Equal(IPAddress.Parse("10.0.2.31"), maps[1]);
        Assert.Equal(maps[1], maps[2]);
        Assert.Equal(IPAddress.Parse("10.0.2.32"), maps[3]);
        Assert.True(server.Gateway.IsVirtualAddress(Ip.ToUInt(maps[3])));
    }

    [Fact]
    public async Task ServiceAdd_SkipsTheGuestAddress()
    {
        await using var server = TunnelServer.Start(guestAddress: () => IPAddress.Parse("10.0.2.31"));
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        Assert.Equal(IPAddress.Parse("10.0.2.32"), ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap)).Address);
    }

    [Fact]
    public async Task IppService_IsAccepted()
    {
        // protocol.md §7.3: the real server compared the service type with the IP type and rejected every print service.
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        var printer = new TunnelService(TunnelMessages.ServiceIpp, 5, 1, 631, "printer", "office", Ip.ToUInt(IPAddress.Parse("192.168.1.20")));
        await client.SendAsync(TunnelMessages.ServiceAdd, TunnelMessages.BuildServiceAdd(printer));
        var (id, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        Assert.Equal(5u, id);
        Assert.True(server.Gateway.IsVirtualAddress(Ip.ToUInt(address)));
    }

    [Fact]
    public async Task ServiceRemove_TakesTheAddressAway_AndTheChannelLives()
    {
        // protocol.md §7.3: SERVICE_REMOVE used to tear the channel down.
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (_, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        await client.SendAsync(TunnelMessages.ServiceRemove, TunnelMessages.BuildServiceRemove(1));
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(2, 7, 81));
        var (id, reused) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        Assert.Equal(2u, id);

        // The freed address is the lowest free one again, and port 80 on it is gone.
        Assert.Equal(address, reused);
        var refused = await Assert.ThrowsAsync<SocketException>(() => server.ConnectAsGuestAsync(address, 80));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task TwoTunnelClients_EachGetTheirOwnAddresses()
    {
        // protocol.md §7.3: a second tunnel client aborted the real server.
        await using var server = TunnelServer.Start();
        await using var first = await RawTunnelClient.ConnectAsync(server);
        await using var second = await RawTunnelClient.ConnectAsync(server);
        await first.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        await second.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var a = ParseIpMap(await first.ReadUntilAsync(TunnelMessages.ServiceIpMap)).Address;
        var b = ParseIpMap(await second.ReadUntilAsync(TunnelMessages.ServiceIpMap)).Address;
        Assert.NotEqual(a, b);
        Assert.Equal(2, server.Gateway.ClientCount);
    }

    [Fact]
    public async Task ClientsBeyondTheLimit_AreClosed_OthersKeepWorking()
    {
        await using var server = TunnelServer.Start(o => o.MaxClients = 1);
        await using var first = await RawTunnelClient.ConnectAsync(server);
        var password = Encoding.UTF8.GetBytes(TunnelServer.Password);
        var (main, mainMini) = await Client.SpiceClientLink.LinkAsync("127.0.0.1", server.EndPoint.Port, 0, Spice.Link.SpiceChannelType.Main, password, TestContext.Current.CancellationToken);
        await using (main)
        {
            var connection = new Spice.Framing.MessageConnection(main, mainMini, 65536, 4);
            var init = await connection.ReadAsync(TestContext.Current.CancellationToken);
            var sessionId = BinaryPrimitives.ReadUInt32LittleEndian(connection.Body);
            Assert.Equal(Spice.Channels.Main.MainMessages.Init, init.Type);
            var (tunnel, _) = await Client.SpiceClientLink.LinkAsync("127.0.0.1", server.EndPoint.Port, sessionId, Spice.Link.SpiceChannelType.Tunnel, password, TestContext.Current.CancellationToken);
            await using (tunnel)
            {
                Assert.Equal(0, await tunnel.ReadAsync(new byte[64], TestContext.Current.CancellationToken));
            }
        }

        await first.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        Assert.Equal(1u, ParseIpMap(await first.ReadUntilAsync(TunnelMessages.ServiceIpMap)).Id);
    }

    public static TheoryData<string, ushort, byte[]> BadMessages()
    {
        var nameOutside = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt32LittleEndian(nameOutside.AsSpan(14), 5000);
        var noNul = Generic(1, 1, 80, "x");
        noNul[^1] = (byte)'y';
        var pointerIntoFixed = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt32LittleEndian(pointerIntoFixed.AsSpan(18), 3);
        var typeZero = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt16LittleEndian(typeZero, 0);
        var typeThree = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt16LittleEndian(typeThree, 3);
        var portZero = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt32LittleEndian(portZero.AsSpan(10), 0);
        var portHuge = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt32LittleEndian(portHuge.AsSpan(10), 70000);
        var ippTruncated = Generic(1, 1, 80);
        BinaryPrimitives.WriteUInt16LittleEndian(ippTruncated, TunnelMessages.ServiceIpp);
        Array.Resize(ref ippTruncated, 24);
        return new TheoryData<string, ushort, byte[]>
        {
            { "SOCKET_DATA for id 20", TunnelMessages.ClientSocketData, TunnelMessages.BuildData(20, [1, 2, 3]) },
            { "SOCKET_DATA for id 0xFFFF", TunnelMessages.ClientSocketData, TunnelMessages.BuildData(0xFFFF, [1]) },
            { "SOCKET_DATA of 0 bytes", TunnelMessages.ClientSocketData, [] },
            { "SOCKET_DATA of 1 byte", TunnelMessages.ClientSocketData, [7] },
            { "SOCKET_DATA for an unused id", TunnelMessages.ClientSocketData, TunnelMessages.BuildData(0, [1]) },
            { "SOCKET_FIN of 0 bytes", TunnelMessages.ClientSocketFin, [] },
            { "SOCKET_FIN for an unused id", TunnelMessages.ClientSocketFin, TunnelMessages.BuildId(3) },
            { "SOCKET_CLOSED for id 0xFFFF", TunnelMessages.SocketClosed, TunnelMessages.BuildId(0xFFFF) },
            { "SOCKET_CLOSED_ACK for an unused id", TunnelMessages.ClientSocketClosedAck, TunnelMessages.BuildId(0) },
            { "OPEN_ACK for an unused id", TunnelMessages.SocketOpenAck, TunnelMessages.BuildIdTokens(0, 10) },
            { "OPEN_NACK of 1 byte", TunnelMessages.SocketOpenNack, [0] },
            { "SOCKET_TOKEN of 2000 bytes", TunnelMessages.ClientSocketToken, new byte[2000] },
            { "SOCKET_TOKEN for an unused id", TunnelMessages.ClientSocketToken, TunnelMessages.BuildIdTokens(1, 1) },
            { "SERVICE_ADD name pointer past the end", TunnelMessages.ServiceAdd, nameOutside },
            { "SERVICE_ADD string without NUL", TunnelMessages.ServiceAdd, noNul },
            { "SERVICE_ADD pointer into the fixed part", TunnelMessages.ServiceAdd, pointerIntoFixed },
            { "SERVICE_ADD type 0", TunnelMessages.ServiceAdd, typeZero },
            { "SERVICE_ADD type 3", TunnelMessages.ServiceAdd, typeThree },
            { "SERVICE_ADD port 0", TunnelMessages.ServiceAdd, portZero },
            { "SERVICE_ADD port 70000", TunnelMessages.ServiceAdd, portHuge },
            { "IPP SERVICE_ADD without its address", TunnelMessages.ServiceAdd, ippTruncated },
            { "SERVICE_ADD of 10 bytes", TunnelMessages.ServiceAdd, new byte[10] },
            { "SERVICE_REMOVE of an unknown id", TunnelMessages.ServiceRemove, TunnelMessages.BuildServiceRemove(9) },
            { "MIGRATE_FLUSH_MARK outside a migration", CommonMessages.MigrateFlushMark, [] },
            { "MIGRATE_DATA outside a migration", CommonMessages.ClientMigrateData, Encoding.ASCII.GetBytes("TMDA\u0001\0\0\0") },
            { "unknown type 200", 200, [] },
            { "ACK_SYNC of 3 bytes", CommonMessages.AckSync, [1, 0, 0] },
        };
    }

    [Theory]
    [MemberData(nameof(BadMessages))]
    public async Task BadMessage_EndsTheChannelOnly(string what, ushort type, byte[] body)
    {
        await using var server = TunnelServer.Start();
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(type, body);
        Assert.False(string.IsNullOrEmpty(what));
        await AssertChannelErrorAsync(server, client, before);
    }

    [Theory]
    [InlineData(2u + (16 * 1024) + 1)]
    [InlineData(0xAAAAAAAAu)]
    public async Task OversizeAnnouncement_EndsTheChannel_BeforeAnyBodyIsRead(uint size)
    {
        await using var server = TunnelServer.Start();
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ClientSocketData, [0, 0], size);
        await AssertChannelErrorAsync(server, client, before);
    }

    [Theory]
    [InlineData(1u, 2u, (ushort)81)]
    [InlineData(2u, 1u, (ushort)80)]
    public async Task DuplicateServiceIdOrPortInAGroup_EndsTheChannel(uint secondId, uint secondGroup, ushort secondPort)
    {
        await using var server = TunnelServer.Start();
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        await client.ReadUntilAsync(TunnelMessages.ServiceIpMap);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(secondId, secondGroup, secondPort));
        await AssertChannelErrorAsync(server, client, before);
    }

    [Fact]
    public async Task ServicesBeyondTheLimit_EndTheChannel()
    {
        await using var server = TunnelServer.Start(o => o.MaxServices = 2);
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        for (var i = 1u; i <= 3; i++)
        {
            await client.SendAsync(TunnelMessages.ServiceAdd, Generic(i, i, 80));
        }

        await AssertChannelErrorAsync(server, client, before);
    }

    /// <summary>Adds a service and opens a socket on it as a guest would; returns the guest's socket once the test has sent OPEN_ACK.</summary>
    private static async Task<(Socket Guest, ushort Id)> OpenSocketAsync(TunnelServer server, RawTunnelClient client, uint tokens)
    {
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (_, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        var guest = server.ConnectAsGuestAsync(address, 80);
        var open = await client.ReadUntilAsync(TunnelMessages.SocketOpen);
        var id = BinaryPrimitives.ReadUInt16LittleEndian(open);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(open.AsSpan(2)));
        Assert.Equal(server.Gateway.Options.Window, BinaryPrimitives.ReadUInt32LittleEndian(open.AsSpan(6)));
        await client.SendAsync(TunnelMessages.SocketOpenAck, TunnelMessages.BuildIdTokens(id, tokens));
        return (await guest, id);
    }

    [Fact]
    public async Task TokenOverflow_EndsTheChannel_AndTheGuestSocketCloses()
    {
        // protocol.md §6.7: the real server never bounded returned tokens.
        await using var server = TunnelServer.Start();
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        var (guest, id) = await OpenSocketAsync(server, client, 5);
        using (guest)
        {
            await client.SendAsync(TunnelMessages.ClientSocketToken, TunnelMessages.BuildIdTokens(id, uint.MaxValue));
            await AssertChannelErrorAsync(server, client, before);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            Assert.Equal(0, await ReadToEndOrResetAsync(guest, timeout.Token));
        }
    }

    [Fact]
    public async Task DataBeyondTheGrantedWindow_EndsTheChannel()
    {
        // The guest reads nothing, so the server cannot give tokens back; the client ignores that.
        await using var server = TunnelServer.Start();
        var before = server.Gateway.Counters.ProtocolErrors;
        await using var client = await RawTunnelClient.ConnectAsync(server);
        var (guest, id) = await OpenSocketAsync(server, client, 5);
        using (guest)
        {
            var chunk = TunnelMessages.BuildData(id, new byte[server.Gateway.Options.MaxDataSize]);
            try
            {
                for (var i = 0; i < 200; i++)
                {
                    await client.SendAsync(TunnelMessages.ClientSocketData, chunk);
                }
            }
            catch (IOException)
            {
                // The server closed the channel while we were still sending.
            }

            await AssertChannelErrorAsync(server, client, before);
        }
    }

    [Fact]
    public async Task OpenNack_RefusesTheGuest()
    {
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (_, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        var guest = server.ConnectAsGuestAsync(address, 80);
        var id = BinaryPrimitives.ReadUInt16LittleEndian(await client.ReadUntilAsync(TunnelMessages.SocketOpen));
        await client.SendAsync(TunnelMessages.SocketOpenNack, TunnelMessages.BuildId(id));
        var refused = await Assert.ThrowsAsync<SocketException>(() => guest);
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        // The slot is free again: the next open reuses id 0.
        var next = server.ConnectAsGuestAsync(address, 80);
        Assert.Equal(id, BinaryPrimitives.ReadUInt16LittleEndian(await client.ReadUntilAsync(TunnelMessages.SocketOpen)));
        await client.SendAsync(TunnelMessages.SocketOpenNack, TunnelMessages.BuildId(id));
        await Assert.ThrowsAsync<SocketException>(() => next);
    }

    [Fact]
    public async Task SocketTable_Full_RefusesTheNextGuest()
    {
        await using var server = TunnelServer.Start(o => o.MaxSockets = 2);
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (_, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        _ = server.ConnectAsGuestAsync(address, 80, 1);
        _ = server.ConnectAsGuestAsync(address, 80, 2);
        var third = await Assert.ThrowsAsync<SocketException>(() => server.ConnectAsGuestAsync(address, 80, 3));
        Assert.Equal(SocketError.ConnectionRefused, third.SocketErrorCode);
    }

    [Fact]
    public async Task ClientClosed_ClosesTheGuestSocket_AndIsAcknowledged()
    {
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        var (guest, id) = await OpenSocketAsync(server, client, 5);
        using (guest)
        {
            await client.SendAsync(TunnelMessages.ClientSocketData, TunnelMessages.BuildData(id, "hello"u8));
            await client.SendAsync(TunnelMessages.SocketClosed, TunnelMessages.BuildId(id));
            Assert.Equal(id, BinaryPrimitives.ReadUInt16LittleEndian(await client.ReadUntilAsync(TunnelMessages.SocketClosedAck)));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            Assert.True(await ReadToEndOrResetAsync(guest, timeout.Token) <= 5);
        }
    }

    [Fact]
    public async Task HalfClose_GuestFinThenClientData_ThenClientFin_ClosesWithCloseAndClosedAck()
    {
        await using var server = TunnelServer.Start();
        await using var client = await RawTunnelClient.ConnectAsync(server);
        var (guest, id) = await OpenSocketAsync(server, client, 5);
        using (guest)
        {
            await guest.SendAsync("request"u8.ToArray());
            guest.Shutdown(SocketShutdown.Send);
            var data = await client.ReadUntilAsync(TunnelMessages.SocketData);
            Assert.Equal("request", Encoding.ASCII.GetString(data.AsSpan(2)));
            Assert.Equal(id, BinaryPrimitives.ReadUInt16LittleEndian(await client.ReadUntilAsync(TunnelMessages.SocketFin)));

            // The other direction still works after the guest's FIN.
            await client.SendAsync(TunnelMessages.ClientSocketData, TunnelMessages.BuildData(id, "reply"u8));
            await client.SendAsync(TunnelMessages.ClientSocketFin, TunnelMessages.BuildId(id));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var received = new byte[16];
            var total = 0;
            int n;
            while ((n = await guest.ReceiveAsync(received.AsMemory(total), SocketFlags.None, timeout.Token)) > 0)
            {
                total += n;
            }

            Assert.Equal("reply", Encoding.ASCII.GetString(received, 0, total));
            Assert.Equal(id, BinaryPrimitives.ReadUInt16LittleEndian(await client.ReadUntilAsync(TunnelMessages.SocketClose)));

            // Data after the server's CLOSE is dropped and counted, not an error.
            await client.SendAsync(TunnelMessages.ClientSocketData, TunnelMessages.BuildData(id, "late"u8));
            await client.SendAsync(TunnelMessages.ClientSocketClosedAck, TunnelMessages.BuildId(id));
            await client.SendAsync(TunnelMessages.ServiceAdd, Generic(2, 2, 81));
            Assert.Equal(2u, ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap)).Id);
            Assert.Equal(1, server.Gateway.Counters.DroppedData);
        }
    }

    /// <summary>Reads until EOF or a reset; returns the bytes read.</summary>
    internal static async Task<int> ReadToEndOrResetAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var total = 0;
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken)) > 0)
            {
                total += n;
            }
        }
        catch (SocketException)
        {
        }

        return total;
    }

    [Fact]
    public async Task AGuestConnection_OpenedWhileTheSendQueueIsFull_WaitsForRoom_AndOpens()
    {
        // One socket's SOCKET_DATA fills the queue towards a client that reads nothing for a while
        // (1024 tokens of 16 KiB outgrow the loopback socket's buffers): that is back-pressure,
        // and a second guest connection's SOCKET_OPEN waits for room instead of being refused.
        await using var server = TunnelServer.Start(o => o.SendQueueCapacity = 4);
        await using var client = await RawTunnelClient.ConnectAsync(server);
        await client.SendAsync(TunnelMessages.ServiceAdd, Generic(1, 1, 80));
        var (_, address) = ParseIpMap(await client.ReadUntilAsync(TunnelMessages.ServiceIpMap));
        var first = server.ConnectAsGuestAsync(address, 80, 40000);
        var open = await client.ReadUntilAsync(TunnelMessages.SocketOpen);
        await client.SendAsync(TunnelMessages.SocketOpenAck, TunnelMessages.BuildIdTokens(BinaryPrimitives.ReadUInt16LittleEndian(open), 1024));
        using var guest = await first;
        var writer = Task.Run(async () =>
        {
            var chunk = new byte[1 << 20];
            for (var i = 0; i < 20; i++)
            {
                await guest.SendAsync(chunk, TestContext.Current.CancellationToken);
            }
        }, TestContext.Current.CancellationToken);

        var session = Assert.Single(server.Gateway.Clients());
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
        {
            while (session.QueuedMessages < 4)
            {
                await Task.Delay(20, wait.Token);
            }
        }

        var second = server.ConnectAsGuestAsync(address, 80, 40001);
        Assert.False(second.IsCompleted, second.Exception?.ToString() ?? "completed at once with the queue full");

        // The client reads again: the SOCKET_OPEN comes behind the data, and its OPEN_ACK opens the connection.
        ushort id;
        do
        {
            open = await client.ReadUntilAsync(TunnelMessages.SocketOpen);
            id = BinaryPrimitives.ReadUInt16LittleEndian(open);
        }
        while (id == 0);

        await client.SendAsync(TunnelMessages.SocketOpenAck, TunnelMessages.BuildIdTokens(id, 32));
        using var opened = await second.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.True(opened.Connected);
        Assert.Equal(0, server.Gateway.Counters.RefusedCount);
        Assert.Equal(2, server.Gateway.Counters.Opened);

        // The writer may still be blocked on the first socket: closing it ends the writer.
        guest.Dispose();
        await writer.ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
