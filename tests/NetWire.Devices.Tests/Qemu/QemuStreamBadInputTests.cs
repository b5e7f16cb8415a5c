using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.Wire;

namespace NetWire.Devices.Tests.Qemu;

public sealed class QemuStreamBadInputTests
{
    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(13u)]
    [InlineData(69_633u)]
    [InlineData(0x7fffffffu)]
    [InlineData(0xffffffffu)]
    public async Task BadLength_ClosesThatConnection_CountsIt_AndTheNextGuestWorks(uint length)
    {
        await using var bridge = await LoopbackBridge.StreamAsync();
        using (var bad = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await bad.SendFrameAsync(StreamClient.Frame(60, 1));
            await bad.SendRawAsync([(byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length, 1, 2, 3, 4]);
            Assert.True(await bad.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(1, bridge.Guest.Counters.Drops(DropReason.BadLength));
        Assert.Single(await bridge.HostReceivesAsync(1));

        using var good = await StreamClient.ConnectAsync(bridge.SocketPath);
        await good.SendFrameAsync(StreamClient.Frame(60, 2));
        Assert.Equal(2, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
    }

    [Fact]
    public async Task HalfFrameThenClose_CountsATruncatedFrame_AndDeliversNothingOfIt()
    {
        await using var bridge = await LoopbackBridge.StreamAsync();
        using (var client = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await client.SendFrameAsync(StreamClient.Frame(100, 1));
            var frame = StreamClient.Frame(1514, 2);
            await client.SendRawAsync([0, 0, 0x05, 0xea, .. frame.AsSpan(0, 700)]);
            Assert.Single(await bridge.HostReceivesAsync(1));
        }

        Assert.True(await LoopbackBridge.EventuallyAsync(() => bridge.Guest.Counters.Drops(DropReason.Truncated) == 1));
        Assert.Empty(await bridge.HostReceivesAsync(1, TimeSpan.FromMilliseconds(200)));
        Assert.Equal(1, bridge.Guest.Counters.RxFrames);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task RandomBytes_NeverCrash_AndEveryFrameIsDeliveredOrCounted(int seed)
    {
        await using var bridge = await LoopbackBridge.StreamAsync(hostQueue: 4096);
        var random = new Random(seed);
        var junk = new byte[64 * 1024];
        random.NextBytes(junk);
        using (var client = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            try
            {
                await client.SendRawAsync(junk);
            }
            catch (System.Net.Sockets.SocketException)
            {
                // The server may close before all of the junk is written.
            }

            Assert.True(await client.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        }

        var counters = bridge.Guest.Counters;
        Assert.True(await LoopbackBridge.EventuallyAsync(() => counters.Drops(DropReason.BadLength) + counters.Drops(DropReason.Truncated) == 1));
        var delivered = await bridge.HostReceivesAsync((int)counters.RxFrames);
        Assert.Equal(counters.RxFrames, delivered.Count);

        using var good = await StreamClient.ConnectAsync(bridge.SocketPath);
        await good.SendFrameAsync(StreamClient.Frame(60, 42));
        Assert.Equal(42, StreamClient.SeqOf((await bridge.HostReceivesAsync(1)).Single()));
    }

    [Fact]
    public async Task EachWayAGuestLeaves_IsLoggedWithItsEndReasonByName()
    {
        var log = new EventLog();
        await using var bridge = await LoopbackBridge.StreamAsync(logger: log);
        using (var bad = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await bad.SendRawAsync([0, 0, 0, 13, 1, 2, 3, 4]);
            Assert.True(await bad.ClosedByServerAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.True(await LoopbackBridge.EventuallyAsync(() => log.Disconnects.Count == 1));
        using (var half = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await half.SendRawAsync([0, 0, 0, 60, 1, 2, 3]);
        }

        Assert.True(await LoopbackBridge.EventuallyAsync(() => log.Disconnects.Count == 2));
        using (var clean = await StreamClient.ConnectAsync(bridge.SocketPath))
        {
            await clean.SendFrameAsync(StreamClient.Frame(60, 1));
            Assert.Single(await bridge.HostReceivesAsync(1));
        }

        Assert.True(await LoopbackBridge.EventuallyAsync(() => log.Disconnects.Count == 3));
        Assert.Equal(
            [(EndReason.ProtocolError, "bad frame length 13"), (EndReason.PeerClosed, "closed mid-frame"), (EndReason.PeerClosed, "closed by the guest")],
            log.Disconnects.Select(d => ((EndReason)d["Reason"]!, (string)d["Detail"]!)));
        Assert.Contains(log.Messages, m => m == "Guest guest disconnected: ProtocolError (bad frame length 13)");
    }

    /// <summary>Keeps what is logged: the formatted messages and the fields of each guest-disconnected event (4103).</summary>
    private sealed class EventLog : ILogger
    {
        public ConcurrentQueue<string> Messages { get; } = new();

        public IReadOnlyList<Dictionary<string, object?>> Disconnects => [.. _disconnects];

        private readonly ConcurrentQueue<Dictionary<string, object?>> _disconnects = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            Messages.Enqueue(formatter(state, exception));
            if (eventId.Id == 4103 && state is IReadOnlyList<KeyValuePair<string, object?>> fields)
            {
                _disconnects.Enqueue(fields.ToDictionary(f => f.Key, f => f.Value));
            }
        }
    }
}
