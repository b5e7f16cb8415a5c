using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control.Migration;
using NetWire.Core.State;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// The migration target's listener under silent connections: they neither block the stream
/// that follows them nor pile up beyond the pending bound (the oldest silent one is evicted).
/// </summary>
public sealed class IncomingFloodTests
{
    [Fact]
    public async Task StreamAfterMoreSilentConnectionsThanTheBound_IsAdopted_AndTheOldestSilentAreEvicted()
    {
        var state = new StateRegistry();
        await using var incoming = new IncomingMigration(new IPEndPoint(IPAddress.Loopback, 0), state, null, NullLogger.Instance) { MaxPending = 4 };
        incoming.Start();
        var silent = new List<Socket>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                silent.Add(socket);
                await socket.ConnectAsync(incoming.LocalEndPoint, TestContext.Current.CancellationToken);
            }

            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            while (incoming.Evicted < 6)
            {
                await Task.Delay(10, guard.Token);
            }

            using var source = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await source.ConnectAsync(incoming.LocalEndPoint, guard.Token);
            await using var stream = new NetworkStream(source);
            await stream.WriteAsync(StateStream.Build([]), guard.Token);
            var (accepted, text) = await MigrationWire.ReadReplyAsync(stream, guard.Token);
            Assert.True(accepted, text);
            await incoming.Adopted.WaitAsync(guard.Token);
            Assert.Equal(7, incoming.Evicted);
            Assert.Equal(0, incoming.Refused);
        }
        finally
        {
            foreach (var socket in silent)
            {
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task SilentConnection_IsDroppedAtTheHeaderDeadline_AndCounted()
    {
        var state = new StateRegistry();
        await using var incoming = new IncomingMigration(new IPEndPoint(IPAddress.Loopback, 0), state, null, NullLogger.Instance) { HeaderTimeout = TimeSpan.FromMilliseconds(200) };
        incoming.Start();
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(incoming.LocalEndPoint, TestContext.Current.CancellationToken);
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var read = await socket.ReceiveAsync(new byte[16], SocketFlags.None, guard.Token);
        Assert.Equal(0, read);
        Assert.Equal(1, incoming.Silent);
        Assert.Equal(0, incoming.Refused);
        Assert.False(incoming.Adopted.IsCompleted);
    }
}
