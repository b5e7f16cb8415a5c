using System.Net.Sockets;
using NetWire.Spice.Framing;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// A relay whose local socket takes no more (the guest behind the socket pair is a VM paused by
/// its own migration, or a service reads slowly) still pauses for a migration's flush: the write
/// it was in stops, and what it had not written is carried by the snapshot and written first
/// when it resumes, so nothing is lost or doubled (docs/migration.md, "Tunnel sockets").
/// </summary>
public sealed class TunnelRelayPauseTests
{
    private const int Pieces = 32;
    private const int PieceSize = 16384;

    [Fact]
    public async Task ARelayBlockedWritingToAFullSocket_Pauses_AndItsSnapshotAndResumeKeepEveryByte()
    {
        var (near, far) = SocketPair.Create();
        using var _far = far;
        near.SendBufferSize = 4096;
        far.ReceiveBufferSize = 4096;
        var connection = new MessageConnection(new MemoryStream(), miniHeader: true, maxReceiveSize: 65536, sendQueueCapacity: 128);
        var relay = new TunnelRelay(1, near, connection, TunnelRelay.ServerIds, PieceSize, Pieces, Pieces);
        var run = relay.RunAsync();
        var data = new byte[Pieces * PieceSize];
        new Random(7).NextBytes(data);
        for (var i = 0; i < Pieces; i++)
        {
            Assert.True(relay.OnData(data.AsSpan(i * PieceSize, PieceSize)));
        }

        // Nobody reads far: the pair fills with the first piece and the relay's write waits for room.
        await Poll.UntilAsync(() => far.Available > 0, "the relay to write into the pair");
        Assert.True(await relay.PauseAsync(TimeSpan.FromSeconds(30)), "the relay did not pause while its local socket was full");
        var snapshot = relay.Snapshot([])!;
        var inPair = SocketPair.Peek(far);
        Assert.InRange(inPair.Length, 1, data.Length - 1);
        byte[] carried = [.. inPair, .. snapshot.ToLocal, .. snapshot.Queued.SelectMany(p => p)];
        Assert.Equal(data, carried);
        Assert.All(snapshot.Queued, p => Assert.InRange(p.Length, 1, PieceSize));

        // A client's relay resumes where it stopped: the far end reads every byte once, in order.
        relay.Resume();
        var read = new byte[data.Length];
        var total = 0;
        while (total < read.Length)
        {
            total += await far.ReceiveAsync(read.AsMemory(total), SocketFlags.None, TestContext.Current.CancellationToken);
        }

        Assert.Equal(data, read);
        relay.Abort();
        await run;
    }
}
