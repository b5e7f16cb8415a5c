using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// A burst of in-order guest segments (one batch of guest frames) is acknowledged once, at the
/// end of the burst, and its bytes reach the host socket intact.
/// </summary>
public sealed class TcpBurstAckTests : IDisposable
{
    private const uint GuestIsn = 5000;
    private readonly CollectingReceiver _receiver = new();
    private readonly GatewayRun _run;
    private readonly Gateway _gateway;

    public TcpBurstAckTests()
    {
        _run = new GatewayRun(new GatewayOptions { AllowHostLoopback = true }, _receiver);
        _gateway = _run.Gateway;
    }

    public void Dispose() => _run.Dispose();

    private static async Task<byte[]> NextFrameAsync(CollectingReceiver receiver)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        byte[]? frame;
        while (!receiver.Frames.TryDequeue(out frame))
        {
            await Task.Delay(5, limit.Token);
        }

        return frame;
    }

    [Fact]
    public async Task TenSegmentsInOneBurst_GetOneAck_AndAllBytesReachTheHost()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        _gateway.SendBatch(BuildTcp(GuestIp, 41000, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460, WindowScale = 7 }));
        using var accepted = await listener.AcceptSocketAsync();
        var (synAck, _) = ParseTcp(await NextFrameAsync(_receiver));
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, synAck.Flags);
        var serverIsn = synAck.SequenceNumber;
        _gateway.SendBatch(BuildTcp(GuestIp, 41000, GatewayIp, port, GuestIsn + 1, serverIsn + 1, TcpFlags.Ack, 65535, []));

        var payload = new byte[10 * 1000];
        new Random(10).NextBytes(payload);
        var burst = new byte[10][];
        for (var i = 0; i < burst.Length; i++)
        {
            burst[i] = BuildTcp(GuestIp, 41000, GatewayIp, port, GuestIsn + 1 + (uint)(i * 1000), serverIsn + 1, i == 9 ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack, 65535, payload.AsSpan(i * 1000, 1000));
        }

        _gateway.SendBatch(burst);
        var acks = _receiver.Frames.ToArray();
        _receiver.Frames.Clear();
        var ack = Assert.Single(acks);
        var (tcp, _) = ParseTcp(ack);
        Assert.Equal(TcpFlags.Ack, tcp.Flags);
        Assert.Equal(GuestIsn + 1 + (uint)payload.Length, tcp.AckNumber);

        var received = new byte[payload.Length];
        var got = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (got < received.Length)
        {
            var n = await accepted.ReceiveAsync(received.AsMemory(got), SocketFlags.None, limit.Token);
            Assert.NotEqual(0, n);
            got += n;
        }

        Assert.Equal(payload, received);
    }
}
