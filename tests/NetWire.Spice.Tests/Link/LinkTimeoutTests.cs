using Microsoft.Extensions.Time.Testing;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Link;

/// <summary>
/// The link stage is bounded in time (a silent or dribbling client is dropped) and in
/// concurrency (links beyond the limit are closed at accept). Time is fake: no sleeps.
/// </summary>
public sealed class LinkTimeoutTests
{
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        // Waits for the server's own progress (a task hop), bounded by the hang guard.
        using var guard = new CancellationTokenSource(RawSpiceClient.HangGuard);
        while (!condition())
        {
            await Task.Delay(10, guard.Token);
        }
    }

    [Fact]
    public async Task SilentClient_IsDroppedWhenTheLinkTimeoutExpires()
    {
        var time = new FakeTimeProvider();
        await using var server = TestServer.Start(o => o.LinkTimeout = TimeSpan.FromSeconds(5), time: time);
        await using var client = await server.ConnectAsync();
        var closed = client.ClosedByServerAsync();
        time.Advance(TimeSpan.FromSeconds(4));
        await Task.Yield();
        Assert.False(closed.IsCompleted);
        while (!closed.IsCompleted)
        {
            // The accept may not have armed its timer yet when time first moves; keep moving it.
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(closed, Task.Delay(20, TestContext.Current.CancellationToken));
        }

        Assert.True(await closed);
        await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.TimedOut) == 1);
    }

    [Fact]
    public async Task DribblingClient_IsDroppedAlthoughItKeepsSendingBytes()
    {
        var time = new FakeTimeProvider();
        await using var server = TestServer.Start(o => o.LinkTimeout = TimeSpan.FromSeconds(5), time: time);
        await using var client = await server.ConnectAsync();
        var link = RawSpiceClient.LinkBytes(0, 1);
        var closed = client.ClosedByServerAsync();
        var sent = 0;
        while (!closed.IsCompleted)
        {
            if (sent < link.Length - 1)
            {
                try
                {
                    await client.SendAsync(link.AsMemory(sent++, 1));
                }
                catch (IOException)
                {
                    // The server dropped the link after the check above (broken pipe or reset): the
                    // close this test waits for, which the loop condition then sees.
                }
            }

            time.Advance(TimeSpan.FromMilliseconds(500));
            await Task.WhenAny(closed, Task.Delay(20, TestContext.Current.CancellationToken));
        }

        Assert.True(await closed);
        await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.TimedOut) == 1);
    }

    [Fact]
    public async Task LinksBeyondTheConcurrencyLimit_AreClosedAtAccept_AndOthersStillLink()
    {
        await using var server = TestServer.Start(o => o.MaxConcurrentLinks = 1);
        await using var holder = await server.ConnectAsync();
        await holder.SendAsync(RawSpiceClient.LinkBytes(0, 1).AsMemory(0, 4));
        await using (var extra = await server.ConnectAsync())
        {
            Assert.True(await extra.ClosedByServerAsync());
        }

        Assert.Equal(1, server.Server.Counters.Of(LinkOutcome.TooManyLinks));
        await holder.DisposeAsync();
        await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.ClientLeft) == 1);
        await using var next = await server.ConnectAsync();
        Assert.Equal(SpiceLinkErr.Ok, await next.LinkAsync(0, 1, TestServer.Password));
    }
}
