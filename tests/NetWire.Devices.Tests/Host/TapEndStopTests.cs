using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// A stop ends a TAP end's loops at once, whatever they wait on: an empty TAP, a receiver with no
/// room, an empty outbound queue. The loops' poll timeout is set to a minute here, so an end
/// that only noticed the stop at its next timeout would miss the 30 s bound by far.
/// </summary>
[Trait("Category", "Host")]
public sealed class TapEndStopTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Stop_EndsTheLoopsAtOnce_NotAtTheirNextTimeout(bool receiverHasRoom)
    {
        HostRequirements.RequireRoot();
        var name = $"nws{Environment.ProcessId % 100000}{(receiverHasRoom ? "a" : "b")}";
        var end = new TapEnd("host", name, FramePool.Shared, 64, NullLogger.Instance) { PollTimeoutMs = 60_000 };
        await using (end)
        {
            using var stop = new CancellationTokenSource();
            var run = end.RunAsync(new StuckReceiver(receiverHasRoom), stop.Token);

            // The TAP exists once the end opened it; give both threads a moment to reach their waits.
            Assert.True(await EventuallyAsync(() => Directory.Exists($"/sys/class/net/{name}")), $"TAP {name} was not opened");
            await Task.Delay(500);
            Assert.False(run.IsCompleted);

            var stopped = System.Diagnostics.Stopwatch.StartNew();
            await stop.CancelAsync();
            await run.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            Assert.True(run.IsCompleted, $"the TAP end was still running {stopped.Elapsed} after the stop");
        }
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        return condition();
    }

    /// <summary>A receiver that takes everything, or one that never has room (the reader then waits for it).</summary>
    private sealed class StuckReceiver(bool hasRoom) : IPacketReceiver
    {
        private readonly TaskCompletionSource _never = new();

        public bool CanRecvPacket => hasRoom;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) =>
            hasRoom ? default : new ValueTask(_never.Task.WaitAsync(cancellationToken));

        public void RecvPacket(Frame frame) => frame.Dispose();
    }
}
