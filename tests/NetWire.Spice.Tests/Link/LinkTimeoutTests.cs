using Microsoft.Extensions.Time.Testing;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Link;

/// <summary>
/// The link stage is bounded in time (a silent or dribbling client is dropped; fake time, no
/// sleeps) and in number (one link beyond the bound evicts the oldest silent one).
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
    public async Task FullLinkStage_EvictsTheOldestSilentConnection_AndTheNewestLinks()
    {
        await using var server = TestServer.Start(o => o.MaxPendingLinks = 4);
        var silent = new List<RawSpiceClient>();
        for (var i = 0; i < 4; i++)
        {
            silent.Add(await server.ConnectAsync());
            await WaitUntilAsync(() => server.Server.PendingLinks == silent.Count);
        }

        try
        {
            await using var real = await server.ConnectAsync();
            Assert.Equal(SpiceLinkErr.Ok, await real.LinkAsync(0, 1, TestServer.Password));
            Assert.True(await silent[0].ClosedByServerAsync());
            Assert.Equal(1, server.Server.Counters.Of(LinkOutcome.Evicted));

            // The linked client leaves the pending set just after its reply is written: wait for
            // that rather than read the count at once (three silent connections stay).
            await WaitUntilAsync(() => server.Server.PendingLinks == 3);
            Assert.Equal(3, server.Server.PendingLinks);
        }
        finally
        {
            foreach (var client in silent)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task FullLinkStage_KeepsAClientThatSentItsLinkMessage_AndEvictsAYoungerSilentOne()
    {
        await using var server = TestServer.Start(o => o.MaxPendingLinks = 2);
        await using var talking = await server.ConnectAsync();
        await talking.SendAsync(RawSpiceClient.LinkBytes(0, 1));
        var (publicKey, _, _) = await talking.ReadOkReplyAsync();
        await using var silent = await server.ConnectAsync();
        await WaitUntilAsync(() => server.Server.PendingLinks == 2);

        await using var newest = await server.ConnectAsync();
        Assert.True(await silent.ClosedByServerAsync());
        await talking.SendTicketAsync(publicKey, TestServer.Password);
        Assert.Equal(SpiceLinkErr.Ok, await talking.ReadResultAsync());
        Assert.Equal(SpiceLinkErr.Ok, await newest.LinkAsync(0, 1, TestServer.Password));
        Assert.Equal(1, server.Server.Counters.Of(LinkOutcome.Evicted));
    }

    [Fact]
    public async Task FloodOfSilentConnections_BeyondTheBound_LeavesARealClientLinking()
    {
        const int Bound = 32;
        await using var server = TestServer.Start(o => o.MaxPendingLinks = Bound);
        var flood = new List<RawSpiceClient>();
        try
        {
            for (var i = 0; i < 200; i++)
            {
                flood.Add(await server.ConnectAsync());
            }

            await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.Evicted) == 200 - Bound);
            await using var real = await server.ConnectAsync();
            Assert.Equal(SpiceLinkErr.Ok, await real.LinkAsync(0, 1, TestServer.Password));

            // The server counts the link after its reply is written: the client can read it first.
            await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.Linked) == 1);
            Assert.Equal(200 - Bound + 1, server.Server.Counters.Of(LinkOutcome.Evicted));

            // The server counts the link once its result is sent: the client may read it first.
            await WaitUntilAsync(() => server.Server.Counters.Of(LinkOutcome.Linked) == 1);
        }
        finally
        {
            foreach (var client in flood)
            {
                await client.DisposeAsync();
            }
        }
    }
}
