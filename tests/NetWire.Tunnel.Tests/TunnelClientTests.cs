using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Spice;
using NetWire.Spice.Channels;
using NetWire.Spice.Framing;
using NetWire.Tunnel.Client;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// NetWire's tunnel client against NetWire's server, with real TCP services on loopback; the
/// guest side is opened the way the gateway opens it for a SYN (its far socket).
/// </summary>
public sealed class TunnelClientTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>A loopback service: runs <paramref name="serve"/> for every accepted connection.</summary>
    private static (TcpListener Listener, Task Loop) StartService(Func<Socket, Task> serve)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(64);
        var loop = Task.Run(async () =>
        {
            var served = new List<Task>();
            try
            {
                while (true)
                {
                    var socket = await listener.AcceptSocketAsync();
                    served.Add(Task.Run(async () =>
                    {
                        using (socket)
                        {
                            await serve(socket);
                        }
                    }));
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }

            await Task.WhenAll(served);
        });
        return (listener, loop);
    }

    private static ushort PortOf(TcpListener listener) => (ushort)((IPEndPoint)listener.LocalEndpoint).Port;

    /// <summary>A download that never ends: writes for as long as the connection is read.</summary>
    private static async Task WriteForeverAsync(Socket socket)
    {
        var chunk = new byte[64 * 1024];
        try
        {
            while (true)
            {
                await socket.SendAsync(chunk, SocketFlags.None);
            }
        }
        catch (SocketException)
        {
        }
    }

    /// <summary>
    /// Echoes until the client closes. A tunnel client that stops aborts its open relays, which may
    /// reset this connection instead of closing it; that ends the echo too.
    /// </summary>
    private static async Task EchoAsync(Socket socket)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
    }

    [Fact]
    public async Task Echo_4MiB_RoundTrips_WithHalfClose()
    {
        var (listener, loop) = StartService(EchoAsync);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        await using var server = TunnelServer.Start();
        var (client, published) = server.CreateClient(TunnelServiceSpec.Parse($"echo=127.0.0.1:{PortOf(listener)},port=7"));
        var running = client.RunAsync(stop.Token);
        var address = await published.WaitAsync("echo");

        using var guest = await server.ConnectAsGuestAsync(address, 7);
        var payload = RandomNumberGenerator.GetBytes(4 * 1024 * 1024);
        var send = Task.Run(async () =>
        {
            await guest.SendAsync(payload, SocketFlags.None);
            guest.Shutdown(SocketShutdown.Send);
        });
        using var received = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await guest.ReceiveAsync(buffer, SocketFlags.None, Token)) > 0)
        {
            received.Write(buffer, 0, n);
        }

        await send;
        Assert.Equal(payload.Length, received.Length);
        var firstDifference = payload.AsSpan().CommonPrefixLength(received.ToArray());
        Assert.True(firstDifference == payload.Length, $"first difference at byte {firstDifference}");
        Assert.True(server.Gateway.Counters.Opened >= 1);

        await stop.CancelAsync();
        await running;
        listener.Stop();
        await loop;
    }

    [Fact]
    public async Task TargetRefuses_GuestIsRefused()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = PortOf(probe);
        probe.Stop();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        await using var server = TunnelServer.Start();
        var (client, published) = server.CreateClient(TunnelServiceSpec.Parse($"closed=127.0.0.1:{port}"));
        var running = client.RunAsync(stop.Token);
        var address = await published.WaitAsync("closed");
        var refused = await Assert.ThrowsAsync<SocketException>(() => server.ConnectAsGuestAsync(address, port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        await stop.CancelAsync();
        await running;
    }

    [Fact]
    public async Task SlowService_StallsTheGuestSender_WithBoundedBuffers_ThenEverythingArrives()
    {
        var release = new TaskCompletionSource();
        long serviceReceived = 0;
        var serviceHash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var (listener, loop) = StartService(async socket =>
        {
            await release.Task;
            var buffer = new byte[64 * 1024];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                serviceHash.AppendData(buffer, 0, n);
                Interlocked.Add(ref serviceReceived, n);
            }
        });
        listener.Server.ReceiveBufferSize = 64 * 1024;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        await using var server = TunnelServer.Start();
        var (client, published) = server.CreateClient(TunnelServiceSpec.Parse($"sink=127.0.0.1:{PortOf(listener)}"));
        var running = client.RunAsync(stop.Token);
        var address = await published.WaitAsync("sink");
        using var guest = await server.ConnectAsGuestAsync(address, PortOf(listener));

        const int Total = 64 * 1024 * 1024;
        var payload = new byte[Total];
        new Random(7).NextBytes(payload);
        long accepted = 0;
        var writer = Task.Run(async () =>
        {
            for (var at = 0; at < Total; at += 64 * 1024)
            {
                await guest.SendAsync(payload.AsMemory(at, 64 * 1024), SocketFlags.None);
                Interlocked.Add(ref accepted, 64 * 1024);
            }

            guest.Shutdown(SocketShutdown.Send);
        });

        // Wait until the guest's writes stop making progress: every buffer on the way is full.
        long last = -1;
        var steady = 0;
        while (steady < 10)
        {
            await Task.Delay(100, Token);
            var now = Interlocked.Read(ref accepted);
            steady = now == last ? steady + 1 : 0;
            last = now;
        }

        Assert.False(writer.IsCompleted, "all 64 MiB were taken while the service read nothing");
        Assert.True(last < 16 * 1024 * 1024, $"{last} bytes were buffered for a service that reads nothing");
        Assert.Equal(0, Interlocked.Read(ref serviceReceived));

        release.SetResult();
        await writer.WaitAsync(TimeSpan.FromSeconds(120), Token);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (Interlocked.Read(ref serviceReceived) < Total && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20, Token);
        }

        await stop.CancelAsync();
        await running;
        listener.Stop();
        await loop;
        Assert.Equal(Total, Interlocked.Read(ref serviceReceived));
        Assert.Equal(SHA256.HashData(payload), serviceHash.GetHashAndReset());
    }

    [Fact]
    public async Task ClientGoesAway_MidTransfer_GuestSocketEnds()
    {
        var (listener, loop) = StartService(WriteForeverAsync);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        await using var server = TunnelServer.Start();
        var (client, published) = server.CreateClient(TunnelServiceSpec.Parse($"stream=127.0.0.1:{PortOf(listener)}"));
        var running = client.RunAsync(stop.Token);
        var address = await published.WaitAsync("stream");
        using var guest = await server.ConnectAsGuestAsync(address, PortOf(listener));
        var buffer = new byte[64 * 1024];
        var total = 0L;
        while (total < 1024 * 1024)
        {
            total += await guest.ReceiveAsync(buffer, SocketFlags.None, Token);
        }

        await stop.CancelAsync();
        await running;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await TunnelProtocolTests.ReadToEndOrResetAsync(guest, timeout.Token);
        Assert.False(timeout.IsCancellationRequested, "the guest socket stayed open after the client left");
        listener.Stop();
        await loop;
    }

    [Fact]
    public async Task ServerRestarts_ClientReconnects_AndAddsItsServicesAgain()
    {
        var (listener, loop) = StartService(EchoAsync);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Token);
        var first = TunnelServer.Start();
        var port = first.EndPoint.Port;
        var (client, published) = first.CreateClient(TunnelServiceSpec.Parse($"echo=127.0.0.1:{PortOf(listener)}"));
        var running = client.RunAsync(stop.Token);
        await published.WaitAsync("echo", 1);
        await first.DisposeAsync();

        await using var second = TunnelServer.Start(port: port);
        var address = await published.WaitAsync("echo", 2);
        using var guest = await second.ConnectAsGuestAsync(address, PortOf(listener));
        await guest.SendAsync("ping"u8.ToArray(), SocketFlags.None);
        var reply = new byte[4];
        var got = 0;
        while (got < 4)
        {
            got += await guest.ReceiveAsync(reply.AsMemory(got), SocketFlags.None, Token);
        }

        Assert.Equal("ping"u8.ToArray(), reply);
        await stop.CancelAsync();
        await running;
        listener.Stop();
        await loop;
    }

    /// <summary>A tunnel client channel fed by hand-written server messages over loopback TCP.</summary>
    private static async Task<(TunnelClientChannel Channel, Task Run, NetworkStream Server, bool Mini)> FakeServerAsync(string service = "s=127.0.0.1:9")
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var connect = new TcpClient();
        await connect.ConnectAsync(IPAddress.Loopback, PortOf(listener), Token);
        var accepted = await listener.AcceptTcpClientAsync(Token);
        var channel = new TunnelClientChannel(connect.GetStream(), true, [TunnelServiceSpec.Parse(service)], static (_, _) => { }, NullLogger.Instance);
        return (channel, channel.RunAsync(Token), accepted.GetStream(), true);
    }

    private static async Task SendAsync(NetworkStream stream, ushort type, byte[] body)
    {
        var header = new byte[DataHeader.MiniLength];
        new DataHeader(0, type, (uint)body.Length).WriteTo(header, mini: true);
        await stream.WriteAsync(header, Token);
        await stream.WriteAsync(body, Token);
    }

    public static TheoryData<string, ushort, byte[], bool> BadServerMessages() => new()
    {
        { "SERVICE_IP_MAP before INIT", TunnelMessages.ServiceIpMap, TunnelMessages.BuildServiceIpMap(1, 0x0A00021F), false },
        { "SOCKET_OPEN before INIT", TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(0, 1, 10), false },
        { "INIT of 8 bytes (the padded drift)", TunnelMessages.Init, new byte[8], false },
        { "INIT with a 2 GiB data size", TunnelMessages.Init, TunnelMessages.BuildInit(20, 0x80000000), false },
        { "SOCKET_OPEN for id 20", TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(20, 1, 10), true },
        { "SOCKET_OPEN of 12 bytes (the padded drift)", TunnelMessages.SocketOpen, new byte[12], true },
        { "SOCKET_DATA for an unused id", TunnelMessages.SocketData, TunnelMessages.BuildData(3, [1]), true },
        { "SOCKET_DATA over the data size", TunnelMessages.SocketData, TunnelMessages.BuildData(0, new byte[2049]), true },
        { "SOCKET_TOKEN for id 0xFFFF", TunnelMessages.SocketToken, TunnelMessages.BuildIdTokens(0xFFFF, 1), true },
        { "SERVICE_IP_MAP for a service never added", TunnelMessages.ServiceIpMap, TunnelMessages.BuildServiceIpMap(9, 0x0A00021F), true },
        { "SOCKET_CLOSE for an unused id", TunnelMessages.SocketClose, TunnelMessages.BuildId(1), true },
    };

    [Theory]
    [MemberData(nameof(BadServerMessages))]
    public async Task BadServerMessage_EndsTheClientChannel(string what, ushort type, byte[] body, bool afterInit)
    {
        var (channel, run, server, _) = await FakeServerAsync();
        await using (server)
        {
            if (afterInit)
            {
                await SendAsync(server, TunnelMessages.Init, TunnelMessages.BuildInit(20, 2048));
            }

            await SendAsync(server, type, body);
            await run.WaitAsync(TimeSpan.FromSeconds(30), Token);
            Assert.IsType<SpiceProtocolException>(channel.AbortReason);
            Assert.Equal(NetWire.Core.Net.EndReason.ProtocolError, channel.EndedBy);
            Assert.False(string.IsNullOrEmpty(what));
        }
    }

    [Fact]
    public async Task SetAck_IsAnsweredWithAckSync_ThenOneAckPerWindow()
    {
        var (channel, run, server, _) = await FakeServerAsync();
        await using (server)
        {
            await SendAsync(server, CommonMessages.SetAck, CommonMessages.BuildSetAck(1, 2));
            await SendAsync(server, TunnelMessages.Init, TunnelMessages.BuildInit(20, 2048));
            await SendAsync(server, CommonMessages.Ping, CommonMessages.BuildPing(5, 0));
            var seen = new List<ushort>();
            var header = new byte[DataHeader.MiniLength];
            while (!seen.Contains(CommonMessages.Ack) || !seen.Contains(CommonMessages.Pong))
            {
                await server.ReadExactlyAsync(header, Token);
                DataHeader.TryParse(header, true, out var h);
                await server.ReadExactlyAsync(new byte[h.Size], Token);
                seen.Add(h.Type);
            }

            Assert.Equal(CommonMessages.AckSync, seen[0]);
            Assert.Contains(TunnelMessages.ServiceAdd, seen);
            channel.Abort(new OperationCanceledException());
            await run;
        }
    }

    [Fact]
    public async Task SocketOpen_WhileTheOtherSocketsFillTheSendQueue_IsAcknowledged_AndTheChannelLives()
    {
        var (listener, loop) = StartService(WriteForeverAsync);
        var (channel, run, server, _) = await FakeServerAsync($"s=127.0.0.1:{PortOf(listener)}");
        await using (server)
        {
            // Ten sockets with tokens for far more than the loopback buffers hold, and a server
            // that reads nothing yet: the client's send queue fills with their SOCKET_DATA.
            await SendAsync(server, TunnelMessages.Init, TunnelMessages.BuildInit(20, 16 * 1024));
            for (ushort id = 0; id < 10; id++)
            {
                await SendAsync(server, TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(id, 1, 1024));
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (channel.QueuedMessages < TunnelClientChannel.SendQueueCapacity && !run.IsCompleted)
            {
                Assert.True(DateTime.UtcNow < deadline, $"the send queue holds {channel.QueuedMessages} messages");
                await Task.Delay(20, Token);
            }

            // One more guest connection: its OPEN_ACK waits for room behind the data.
            await SendAsync(server, TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(10, 1, 1024));
            var acked = new HashSet<ushort>();
            var drain = Task.Run(async () =>
            {
                var header = new byte[DataHeader.MiniLength];
                var body = new byte[64 * 1024];
                while (!acked.Contains(10))
                {
                    await server.ReadExactlyAsync(header, Token);
                    DataHeader.TryParse(header, true, out var h);
                    await server.ReadExactlyAsync(body.AsMemory(0, (int)h.Size), Token);
                    if (h.Type == TunnelMessages.SocketOpenAck)
                    {
                        acked.Add(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(body));
                    }
                }
            });
            var first = await Task.WhenAny(drain, run).WaitAsync(TimeSpan.FromSeconds(60), Token);
            Assert.True(first == drain, $"the channel ended before the OPEN_ACK: {channel.AbortReason?.Message}");
            await drain;
            Assert.Equal(11, acked.Count);
            Assert.Null(channel.AbortReason);
            Assert.False(run.IsCompleted);
            channel.Abort(new OperationCanceledException());
            await run;
        }

        listener.Stop();
        await loop;
    }
}
