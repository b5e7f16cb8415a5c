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
        await ReachTimeWaitAsync(_gateway, _receiver, listener, port);

        _receiver.Frames.Clear();
        _gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 100_000, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
        using var second = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var again = await _receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(GuestIsn + 100_001, again.AckNumber);
    }

    /// <summary>
    /// A full table evicts a connection in TIME-WAIT whose host socket is done with for a new
    /// connection (docs/gateway.md, "Limits (memory is bounded)"); one whose guest bytes still wait for the host stays
    /// (GatewayMigrationTests.TimeWait_WhileGuestBytesWait_IsNotEvictedForANewConnection).
    /// </summary>
    [Fact]
    public async Task FullTable_EvictsAConnectionInTimeWaitWithNothingLeftForTheHost()
    {
        var receiver = new CollectingReceiver();
        using var run = new GatewayRun(new GatewayOptions { AllowHostLoopback = true, MaxTcpConnections = 1 }, receiver);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        await ReachTimeWaitAsync(run.Gateway, receiver, listener, port);

        receiver.Frames.Clear();
        run.Gateway.SendBatch(BuildTcp(GuestIp, (ushort)(GuestPort + 1), GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
        using var second = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var synAck = await receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        Assert.Equal(GuestIsn + 1, synAck.AckNumber);
        lock (run.Gateway.Sync)
        {
            Assert.Equal(1, run.Gateway.Tcp.Count);
        }
    }

    /// <summary>The host closes first: its FIN reaches the guest, whose FIN and ACK end in the gateway's TIME-WAIT.</summary>
    private static async Task ReachTimeWaitAsync(Gateway gateway, CollectingReceiver receiver, TcpListener listener, ushort port)
    {
        gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460 }));
        var first = await listener.AcceptSocketAsync();
        var synAck = await receiver.NextTcpAsync(TcpFlags.Syn | TcpFlags.Ack);
        gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, synAck.SequenceNumber + 1, TcpFlags.Ack, 65535, []));
        first.Dispose();
        var fin = await receiver.NextTcpAsync(TcpFlags.Fin | TcpFlags.Ack);
        gateway.SendBatch(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, fin.SequenceNumber + 1, TcpFlags.Fin | TcpFlags.Ack, 65535, []));
        lock (gateway.Sync)
        {
            Assert.StartsWith("TimeWait", gateway.Tcp.Describe(), StringComparison.Ordinal);
        }
    }
}
