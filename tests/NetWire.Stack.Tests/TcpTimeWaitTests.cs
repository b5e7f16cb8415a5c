using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// A connection the host closed first stays in the gateway's TIME-WAIT while the guest's side is
/// gone: a new SYN from the same port, past the old sequence space, opens a new connection at
/// once (RFC 9293 3.10.7.4) instead of waiting for the guest's retransmission.
/// </summary>
public sealed class TcpTimeWaitTests : IDisposable
{
    private const uint GuestIsn = 7000;
    private const ushort GuestPort = 42000;
    private readonly CollectingReceiver _receiver = new();
    private readonly GatewayRun _run;
    private readonly Gateway _gateway;

    public TcpTimeWaitTests()
    {
        _run = new GatewayRun(new GatewayOptions { AllowHostLoopback = true }, _receiver);
        _gateway = _run.Gateway;
    }

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task NewSynOnThePortsOfAConnectionInTimeWait_OpensANewConnection()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        _gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
        var first = await listener.AcceptSocketAsync();
        var synAck = await _receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        _gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, synAck.SequenceNumber + 1, TcpFlags.Ack, 65535, []));

        // The host closes first: its FIN reaches the guest, whose FIN and ACK end in the gateway's TIME-WAIT.
        first.Dispose();
        var fin = await _receiver.NextTcpAsync(TcpFlags.Fin | TcpFlags.Ack);
        _gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, fin.SequenceNumber + 1, TcpFlags.Fin | TcpFlags.Ack, 65535, []));
        lock (_gateway.Sync)
        {
            Assert.StartsWith("TimeWait", _gateway.Tcp.Describe(), StringComparison.Ordinal);
        }

        _receiver.Frames.Clear();
        _gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 100_000, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
        using var second = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var again = await _receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(GuestIsn + 100_001, again.AckNumber);
    }
}
