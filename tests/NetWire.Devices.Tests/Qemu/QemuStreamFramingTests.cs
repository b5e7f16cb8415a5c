using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Devices.Qemu;

namespace NetWire.Devices.Tests.Qemu;

public sealed class QemuStreamFramingTests
{
    [Fact]
    public async Task GuestFrames_ArriveWhole_InOrder_AndHostFramesGoBackPrefixed()
    {
        await using var bridge = await LoopbackBridge.StreamAsync();
        using var client = await StreamClient.ConnectAsync(bridge.SocketPath);

        // Unpadded 42-byte ARP-sized frame, a full-size one and a jumbo one, as QEMU sends them.
        int[] lengths = [42, 1514, 9014, FramePool.MaxFrameLength];
        for (var i = 0; i < lengths.Length; i++)
        {
            await client.SendFrameAsync(StreamClient.Frame(lengths[i], i));
        }

        var received = await bridge.HostReceivesAsync(lengths.Length);
        Assert.Equal(lengths, received.Select(f => f.Length));
        Assert.Equal([0, 1, 2, 3], received.Select(StreamClient.SeqOf));
        Assert.Equal(StreamClient.Frame(9014, 2), received[2]);

        await bridge.Host.Inject(StreamClient.Frame(60, 77));
        var back = await client.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(back);
        Assert.Equal(StreamClient.Frame(60, 77), back);
        Assert.Equal(lengths.Sum(), bridge.Guest.Counters.RxBytes);
    }

    [Fact]
    public async Task ManySmallFramesInOneWrite_AreAllSplitCorrectly()
    {
        await using var bridge = await LoopbackBridge.StreamAsync(hostQueue: 4096);
        using var client = await StreamClient.ConnectAsync(bridge.SocketPath);
        var batch = new MemoryStream();
        for (var i = 0; i < 2000; i++)
        {
            var frame = StreamClient.Frame(60 + (i % 50), i);
            batch.Write([0, 0, (byte)(frame.Length >> 8), (byte)frame.Length]);
            batch.Write(frame);
        }

        await client.SendRawAsync(batch.ToArray());
        var received = await bridge.HostReceivesAsync(2000);
        Assert.Equal(Enumerable.Range(0, 2000), received.Select(StreamClient.SeqOf));
        Assert.All(received, f => Assert.Equal(StreamClient.Frame(f.Length, StreamClient.SeqOf(f)), f));
    }

    [Fact]
    public async Task GuestThatDisconnects_CanReconnect_AndQueuedFramesWaitForIt()
    {
        await using var bridge = await LoopbackBridge.StreamAsync();
        using (var first = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await first.SendFrameAsync(StreamClient.Frame(60, 1));
            Assert.Single(await bridge.HostReceivesAsync(1));
        }

        // Frames that arrive while no guest is attached wait in the queue for the next one.
        Assert.True(await LoopbackBridge.EventuallyAsync(() => !((QemuStreamEnd)bridge.Guest).IsConnected));
        await bridge.Host.Inject(StreamClient.Frame(60, 2));

        using var second = await StreamClient.ConnectAsync(bridge.SocketPath);
        var frame = await second.ReceiveFrameAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, StreamClient.SeqOf(frame!));
        await second.SendFrameAsync(StreamClient.Frame(60, 3));
        Assert.Equal(3, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
        Assert.Equal(2, bridge.Guest.Counters.Connections);
    }

    [Fact]
    public async Task SecondGuest_IsRefusedWhileTheFirstIsAttached()
    {
        await using var bridge = await LoopbackBridge.StreamAsync();
        using var first = await StreamClient.ConnectAsync(bridge.SocketPath);
        await first.SendFrameAsync(StreamClient.Frame(60, 1));
        Assert.Single(await bridge.HostReceivesAsync(1));

        using var second = await StreamClient.ConnectAsync(bridge.SocketPath);
        Assert.True(await second.ClosedByServerAsync(TimeSpan.FromSeconds(10)));

        await first.SendFrameAsync(StreamClient.Frame(60, 2));
        Assert.Equal(2, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
    }

    [Fact]
    public async Task ConnectMode_ReachesAListeningQemu_AndReconnectsAfterItGoesAway()
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var path = Path.Combine(dir, "qemu.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen();
        var guest = new QemuStreamEnd("guest", new UnixDomainSocketEndPoint(path), connect: true, FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest);

        using (var accepted = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10)))
        {
            await accepted.SendAsync(new byte[] { 0, 0, 0, 60 }.Concat(StreamClient.Frame(60, 5)).ToArray());
            Assert.Equal(5, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
        }

        using var again = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await again.SendAsync(new byte[] { 0, 0, 0, 60 }.Concat(StreamClient.Frame(60, 6)).ToArray());
        Assert.Equal(6, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
        Assert.Contains("server=on", guest.QemuNetdev(), StringComparison.Ordinal);
        Directory.Delete(dir, true);
    }

    [Fact]
    public async Task TcpListen_PrintsTheQemuOptionWithTheBoundPort()
    {
        var guest = new QemuStreamEnd("guest", new IPEndPoint(IPAddress.Loopback, 0), connect: false, FramePool.Shared, 64, NullLogger.Instance);
        await using var bridge = LoopbackBridge.With(guest);
        await guest.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        var port = ((IPEndPoint)guest.LocalEndPoint!).Port;
        Assert.Equal($"stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port={port}", guest.QemuNetdev());

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, port);
        await client.SendAsync(new byte[] { 0, 0, 0, 60 }.Concat(StreamClient.Frame(60, 9)).ToArray());
        Assert.Equal(9, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
    }
}
