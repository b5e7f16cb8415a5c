using System.Net;
using System.Net.Sockets;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// Open connections that carry nothing hold no ring buffers: a ring is rented when bytes need a
/// place and returned as soon as it is empty again, so memory per idle connection is the
/// connection's own small state (docs/performance.md, "User-mode gateway").
/// </summary>
public sealed class TcpIdleMemoryTests : IDisposable
{
    private readonly CollectingReceiver _receiver = new();
    private readonly GatewayRun _run;
    private readonly FramePool _pool = new();
    private readonly Gateway _gateway;

    public TcpIdleMemoryTests()
    {
        _run = new GatewayRun(new GatewayOptions { AllowHostLoopback = true }, _receiver, _pool);
        _gateway = _run.Gateway;
    }

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task FiftyConnections_AfterAnExchangeBothWays_HoldNoRingBuffers()
    {
        const int Connections = 50;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(Connections);
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        var hosts = new List<Socket>();
        var serverIsns = new uint[Connections];
        try
        {
            for (var i = 0; i < Connections; i++)
            {
                Send(BuildTcp(GuestIp, GuestPort(i), GatewayIp, port, 1000, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
                hosts.Add(await listener.AcceptSocketAsync());
                var (synAck, _) = ParseTcp(await NextFrameAsync());
                serverIsns[i] = synAck.SequenceNumber;
                Send(BuildTcp(GuestIp, GuestPort(i), GatewayIp, port, 1001, serverIsns[i] + 1, TcpFlags.Ack, 65535, []));
            }

            Assert.Equal(Connections, Count());
            Assert.Equal(0, BufferBytes());

            // Ten bytes each way on every connection, all acknowledged.
            for (var i = 0; i < Connections; i++)
            {
                Send(BuildTcp(GuestIp, GuestPort(i), GatewayIp, port, 1001, serverIsns[i] + 1, TcpFlags.Ack | TcpFlags.Psh, 65535, "guest-data"u8));
                Assert.Equal("guest-data"u8.ToArray(), await ReceiveAsync(hosts[i], 10));
                hosts[i].Send("host-data!"u8);
                byte[] data;
                do
                {
                    (_, data) = ParseTcp(await NextFrameAsync());
                }
                while (data.Length == 0);

                Assert.Equal("host-data!"u8.ToArray(), data);
                Send(BuildTcp(GuestIp, GuestPort(i), GatewayIp, port, 1011, serverIsns[i] + 11, TcpFlags.Ack, 65535, []));
            }

            Assert.Equal(Connections, Count());
            Assert.Equal(0, BufferBytes());
        }
        finally
        {
            foreach (var host in hosts)
            {
                host.Dispose();
            }
        }
    }

    private static ushort GuestPort(int i) => (ushort)(43000 + i);

    private int Count()
    {
        lock (_gateway.Sync)
        {
            return _gateway.Tcp.Count;
        }
    }

    private long BufferBytes()
    {
        lock (_gateway.Sync)
        {
            return _gateway.Tcp.BufferBytes;
        }
    }

    private void Send(byte[] bytes)
    {
        lock (_gateway.Sync)
        {
            _gateway.OnGuestFrame(bytes);
            _gateway.EndOfBatch();
        }
    }

    private async Task<byte[]> NextFrameAsync()
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        byte[]? frame;
        while (!_receiver.Frames.TryDequeue(out frame))
        {
            await Task.Delay(2, limit.Token);
        }

        return frame;
    }

    private static async Task<byte[]> ReceiveAsync(Socket socket, int length)
    {
        var received = new byte[length];
        var got = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (got < length)
        {
            var n = await socket.ReceiveAsync(received.AsMemory(got), SocketFlags.None, limit.Token);
            Assert.NotEqual(0, n);
            got += n;
        }

        return received;
    }
}
