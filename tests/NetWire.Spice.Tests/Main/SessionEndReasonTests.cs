using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Main;

/// <summary>Why a session ended, by kind: each way a main channel can end gives its own reason.</summary>
public sealed class SessionEndReasonTests
{
    [Fact]
    public async Task ClientDisconnecting_IsPeerLeft() =>
        Assert.Equal(EndReason.PeerLeft, await EndedByAsync(client => client.SendMessageAsync(6, new byte[12])));

    [Fact]
    public async Task AnUnknownMessage_IsProtocolError() =>
        Assert.Equal(EndReason.ProtocolError, await EndedByAsync(client => client.SendMessageAsync(9999, [])));

    [Fact]
    public async Task TheClientClosingItsSocket_IsPeerClosed() =>
        Assert.Equal(EndReason.PeerClosed, await EndedByAsync(client => client.DisposeAsync().AsTask()));

    [Fact]
    public async Task TheClientResettingItsSocket_IsConnectionLost() =>
        Assert.Equal(EndReason.ConnectionLost, await EndedByAsync(client =>
        {
            client.Socket.LingerState = new LingerOption(true, 0);
            client.Socket.Dispose();
            return Task.CompletedTask;
        }));

    [Fact]
    public async Task TheServerStopping_SaysGoodbye_AndIsDisconnected() =>
        Assert.Equal(EndReason.Disconnected, await EndedByAsync(static (_, server) => server.Server.StopAsync()));

    private static Task<EndReason?> EndedByAsync(Func<RawSpiceClient, Task> end) => EndedByAsync((client, _) => end(client));

    /// <summary>Links a main channel, ends it with <paramref name="end"/>, and returns the session's reason.</summary>
    private static async Task<EndReason?> EndedByAsync(Func<RawSpiceClient, TestServer, Task> end)
    {
        await using var server = TestServer.Start();
        await using var client = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, 1, TestServer.Password, channelCaps: [0]));
        var (_, init) = await client.ReadUntilAsync(103);
        Assert.True(server.Server.Sessions.TryGet(BitConverter.ToUInt32(init, 0), out var session));

        await end(client, server);
        await session!.Ended.WaitAsync(RawSpiceClient.HangGuard);
        return session.EndedBy;
    }
}
