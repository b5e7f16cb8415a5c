using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Qemu;

namespace NetWire.Devices.Tests.Qemu;

public sealed class QemuDgramTests
{
    [Fact]
    public async Task Udp_OneDatagramIsOneFrame_BothWays()
    {
        var local = LoopbackBridge.FreeUdpEndPoint();
        using var qemu = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        qemu.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var guest = new QemuDgramEnd("guest", local, qemu.LocalEndPoint!, FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest);
        await Task.Delay(200);

        await qemu.SendToAsync(StreamClient.Frame(42, 1), local);
        await qemu.SendToAsync(StreamClient.Frame(1514, 2), local);
        var received = await bridge.HostReceivesAsync(2);
        Assert.Equal([42, 1514], received.Select(f => f.Length));
        Assert.Equal(StreamClient.Frame(1514, 2), received[1]);

        await bridge.Host.Inject(StreamClient.Frame(60, 3));
        var buffer = new byte[2048];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await qemu.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        Assert.Equal(StreamClient.Frame(60, 3), buffer.AsSpan(0, n).ToArray());
        Assert.Contains($"remote.port={local.Port}", guest.QemuNetdev(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Udp_DatagramsFromOtherSendersOrTooShort_AreDroppedAndCounted()
    {
        var local = LoopbackBridge.FreeUdpEndPoint();
        using var qemu = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        qemu.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var stranger = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var guest = new QemuDgramEnd("guest", local, qemu.LocalEndPoint!, FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest);
        await Task.Delay(200);

        await stranger.SendToAsync(StreamClient.Frame(60, 1), local);
        await qemu.SendToAsync(new byte[13], local);
        await qemu.SendToAsync(StreamClient.Frame(60, 2), local);

        var received = await bridge.HostReceivesAsync(1);
        Assert.Equal(2, StreamClient.SeqOf(received.Single()));
        Assert.True(await LoopbackBridge.EventuallyAsync(() => guest.Counters.Drops(DropReason.ForeignSource) == 1));
        Assert.Equal(1, guest.Counters.Drops(DropReason.BadLength));
    }

    [Fact]
    public async Task Udp_WhenHostIsFull_DropsWithPeerFullReason_InsteadOfHidingItInTheKernel()
    {
        var local = LoopbackBridge.FreeUdpEndPoint();
        using var qemu = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        qemu.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var guest = new QemuDgramEnd("guest", local, qemu.LocalEndPoint!, FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest, hostQueue: 8);
        await Task.Delay(200);

        for (var i = 0; i < 100; i++)
        {
            await qemu.SendToAsync(StreamClient.Frame(60, i), local);
        }

        Assert.True(await LoopbackBridge.EventuallyAsync(() => guest.Counters.RxFrames + guest.Counters.Drops(DropReason.PeerFull) == 100));
        Assert.Equal(8, guest.Counters.RxFrames);
        Assert.Equal(Enumerable.Range(0, 8), bridge.Host.Deliver().Select(StreamClient.SeqOf));
    }

    [Fact]
    public async Task Unix_RoundTrip_AndPausesInsteadOfDropping()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var local = Path.Combine(dir, "netwire.dgram");
        var remote = Path.Combine(dir, "qemu.dgram");
        using var qemu = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        qemu.Bind(new UnixDomainSocketEndPoint(remote));
        var guest = new QemuDgramEnd("guest", new UnixDomainSocketEndPoint(local), new UnixDomainSocketEndPoint(remote), FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest, hostQueue: 8);
        Assert.True(await LoopbackBridge.EventuallyAsync(() => File.Exists(local)));

        // Sent with blocking sendto from a thread, as QEMU's sender waits when NetWire stops reading.
        var sender = Task.Factory.StartNew(
            () =>
            {
                for (var i = 0; i < 40; i++)
                {
                    qemu.SendTo(StreamClient.Frame(60, i), new UnixDomainSocketEndPoint(local));
                }
            },
            TaskCreationOptions.LongRunning);

        // The host end holds 8 and the kernel queue about 10: the sender must be held back.
        Assert.True(await LoopbackBridge.EventuallyAsync(() => bridge.Host.Queued == 8));
        await Task.Delay(200);
        Assert.False(sender.IsCompleted);

        var received = await bridge.HostReceivesAsync(40);
        await sender.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Enumerable.Range(0, 40), received.Select(StreamClient.SeqOf));
        Assert.Equal(0, guest.Counters.TotalDrops);

        await bridge.Host.Inject(StreamClient.Frame(60, 99));
        var buffer = new byte[2048];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var n = await qemu.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        Assert.Equal(99, StreamClient.SeqOf(buffer.AsSpan(0, n).ToArray()));
        Directory.Delete(dir, true);
    }
}
