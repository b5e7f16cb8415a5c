using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// A host socket that stops taking bytes: a connect to a loopback server finishes at once and its
/// socket is watched without output readiness until a send meets EAGAIN; from then on the
/// poller's EPOLLOUT must move the rest once the host reads again.
/// </summary>
public sealed class TcpHostBackpressureTests : IDisposable
{
    private const uint GuestIsn = 9000;

    /// <summary>More than the host socket's send buffer can grow to (tcp_wmem's 4 MiB by default) and its peer's small receive buffer hold.</summary>
    private const int Length = 6 * 1024 * 1024;

    private readonly CollectingReceiver _receiver = new();
    private readonly GatewayRun _run;
    private readonly Gateway _gateway;

    public TcpHostBackpressureTests()
    {
        var options = new GatewayOptions { AllowHostLoopback = true, TcpBufferBytes = 8 * 1024 * 1024 };
        _run = new GatewayRun(options, _receiver);
        _gateway = _run.Gateway;
    }

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task HostThatStopsReading_GetsEveryByteOnceItReadsAgain()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Server.ReceiveBufferSize = 4096;
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        _gateway.SendBatch(BuildTcp(GuestIp, 41500, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460, WindowScale = 7 }));
        using var accepted = await listener.AcceptSocketAsync();
        var synAck = await _receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        var serverIsn = synAck.SequenceNumber;
        _gateway.SendBatch(BuildTcp(GuestIp, 41500, GatewayIp, port, GuestIsn + 1, serverIsn + 1, TcpFlags.Ack, 65535, []));

        // The whole payload in one batch: the gateway's window (8 MiB) takes it, the host socket cannot.
        var payload = new byte[Length];
        new Random(21).NextBytes(payload);
        var segments = new List<byte[]>();
        for (var offset = 0; offset < Length; offset += 1460)
        {
            var size = Math.Min(1460, Length - offset);
            segments.Add(BuildTcp(GuestIp, 41500, GatewayIp, port, GuestIsn + 1 + (uint)offset, serverIsn + 1, TcpFlags.Ack, 65535, payload.AsSpan(offset, size)));
        }

        _gateway.SendBatch([.. segments]);
        string state;
        lock (_gateway.Sync)
        {
            state = _gateway.Tcp.Describe();
        }

        // The precondition: a send met EAGAIN and bytes wait in the ring for the socket's output readiness.
        Assert.Contains(" w False", state, StringComparison.Ordinal);

        var received = new byte[Length];
        var got = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (got < received.Length)
        {
            var n = await accepted.ReceiveAsync(received.AsMemory(got), SocketFlags.None, limit.Token);
            Assert.NotEqual(0, n);
            got += n;
        }

        Assert.Equal(payload, received);
    }
}
