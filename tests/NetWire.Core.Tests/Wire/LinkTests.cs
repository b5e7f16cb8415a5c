using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Packets;
using NetWire.Core.Taps;
using NetWire.Core.Wire;
using NetWire.Testing;

namespace NetWire.Core.Tests.Wire;

public sealed class LinkTests
{
    private static readonly MacAddress GuestMac = new(0x5254_0012_3456);

    private static byte[] FrameBytes(int length, byte tag)
    {
        var bytes = new byte[length];
        bytes.AsSpan().Fill(tag);
        return bytes;
    }

    /// <summary>A frame of <paramref name="length"/> bytes holding an IPv4 packet from <paramref name="source"/>.</summary>
    private static byte[] Ipv4Frame(int length, uint source, uint destination)
    {
        var frame = new byte[length];
        new EthernetHeader(MacAddress.Broadcast, GuestMac, EtherType.Ipv4).WriteTo(frame);
        new Ipv4Header(source, destination, IpProtocol.Udp, length - EthernetFrame.HeaderLength - Ipv4Packet.MinHeaderLength)
            .WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    [Fact]
    public async Task Frames_CrossInBothDirections_AndAreCounted()
    {
        var guest = new InMemoryWireEnd("guest", 16);
        var host = new InMemoryWireEnd("host", 16);
        using var cts = new CancellationTokenSource();
        var run = new Link(guest, host, null, NullLogger.Instance).RunAsync(cts.Token);

        await guest.Inject(FrameBytes(60, 1));
        await guest.Inject(FrameBytes(1514, 2));
        await host.Inject(FrameBytes(42, 3));

        var atHost = host.Deliver();
        var atGuest = guest.Deliver();
        Assert.Equal([60, 1514], atHost.Select(f => f.Length));
        Assert.Equal(2, atHost[1][0]);
        Assert.Single(atGuest);
        Assert.Equal(3, atGuest[0][41]);
        Assert.Equal(2, host.Counters.TxFrames);
        Assert.Equal(1574, host.Counters.TxBytes);

        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task Inject_WhenPeerFull_WaitsUntilPeerDrains_AndLosesNothing()
    {
        var guest = new InMemoryWireEnd("guest", 4);
        var host = new InMemoryWireEnd("host", 4);
        using var cts = new CancellationTokenSource();
        var run = new Link(guest, host, null, NullLogger.Instance).RunAsync(cts.Token);

        for (byte i = 0; i < 4; i++)
        {
            await guest.Inject(FrameBytes(60, i));
        }

        Assert.False(host.CanSendPacket);
        var fifth = guest.Inject(FrameBytes(60, 4));
        await Task.Delay(20);
        Assert.False(fifth.IsCompleted);
        Assert.Equal(4, host.Queued);

        var first = host.Deliver();
        await fifth.WaitAsync(TimeSpan.FromSeconds(5));
        var second = host.Deliver();

        Assert.Equal([0, 1, 2, 3, 4], first.Concat(second).Select(f => f[0]).Select(b => (int)b));
        Assert.Equal(0, host.Counters.TotalDrops);

        await cts.CancelAsync();
        await run;
    }

    [Theory]
    [InlineData("net_wire", 2, 0)]
    [InlineData("net_wire", 1, 2)]
    [InlineData("net_wire", 0, 1)]
    [InlineData("keyboard", 1, 1)]
    public void Attach_RefusesUnsupportedInterface(string name, int major, int minor)
    {
        var odd = new InMemoryWireEnd("guest", 4, new NetWireInterface(name, major, minor));
        var host = new InMemoryWireEnd("host", 4);
        var ex = Assert.Throws<NetWireVersionException>(() => new Link(odd, host, null, NullLogger.Instance));
        Assert.Contains("guest", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Attach_AcceptsOlderMinorVersion()
    {
        var older = new InMemoryWireEnd("guest", 4, new NetWireInterface("net_wire", 1, 0));
        var host = new InMemoryWireEnd("host", 4);
        _ = new Link(older, host, null, NullLogger.Instance);
    }

    [Fact]
    public async Task Capture_RecordsEveryCrossingFrameWithDirection()
    {
        var guest = new InMemoryWireEnd("guest", 16);
        var host = new InMemoryWireEnd("host", 16);
        var sink = new RecordingSink();
        using var cts = new CancellationTokenSource();
        var run = new Link(guest, host, sink, NullLogger.Instance).RunAsync(cts.Token);

        await guest.Inject(FrameBytes(60, 1));
        await host.Inject(FrameBytes(70, 2));
        await guest.Inject(FrameBytes(80, 3));

        Assert.Equal(
            [(60, CaptureDirection.Inbound), (70, CaptureDirection.Outbound), (80, CaptureDirection.Inbound)],
            sink.Frames);
        Assert.Equal(3, sink.FramesWritten);

        await cts.CancelAsync();
        await run;
    }

    [Fact]
    public async Task Dispose_CountsQueuedFramesAsShutdownDrops()
    {
        var guest = new InMemoryWireEnd("guest", 16);
        var host = new InMemoryWireEnd("host", 16);
        using var cts = new CancellationTokenSource();
        var run = new Link(guest, host, null, NullLogger.Instance).RunAsync(cts.Token);
        await guest.Inject(FrameBytes(60, 1));
        await guest.Inject(FrameBytes(60, 2));
        await cts.CancelAsync();
        await run;

        await host.DisposeAsync();
        Assert.Equal(2, host.Counters.Drops(DropReason.Shutdown));
        Assert.Equal(guest.Counters.RxFrames, host.Counters.TxFrames + host.Counters.TotalDrops);
    }

    [Fact]
    public async Task GuestIp_IsLearnedFromTheGuestsArpAndIpv4Frames_NotFromTheHosts()
    {
        var guest = new InMemoryWireEnd("guest", 16);
        var host = new InMemoryWireEnd("host", 16);
        using var cts = new CancellationTokenSource();
        var run = new Link(guest, host, null, NullLogger.Instance).RunAsync(cts.Token);
        Assert.Null(guest.GuestIp);

        // DHCP DISCOVER comes from 0.0.0.0: no address yet.
        await guest.Inject(Ipv4Frame(342, 0, 0xffffffff));
        Assert.Null(guest.GuestIp);

        var arp = FrameBytes(42, 0);
        new EthernetHeader(MacAddress.Broadcast, GuestMac, EtherType.Arp).WriteTo(arp);
        new ArpHeader(ArpOperation.Request, GuestMac, 0x0A00020F, default, 0x0A000202).WriteTo(arp.AsSpan(EthernetFrame.HeaderLength));
        await guest.Inject(arp);
        Assert.Equal("10.0.2.15", guest.GuestIp?.ToString());

        await host.Inject(Ipv4Frame(60, 0xC0000001, 0x0A00020F));
        Assert.Equal("10.0.2.15", guest.GuestIp?.ToString());

        await cts.CancelAsync();
        await run;
    }

    private sealed class RecordingSink : ICaptureSink
    {
        public List<(int Length, CaptureDirection Direction)> Frames { get; } = [];

        public long FramesWritten => Frames.Count;

        public int AddInterface(string name, string description) => 0;

        public void Write(int interfaceId, ReadOnlySpan<byte> frame, CaptureDirection direction, DateTimeOffset timestamp) =>
            Frames.Add((frame.Length, direction));
    }
}
