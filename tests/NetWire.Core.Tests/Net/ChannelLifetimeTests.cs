using NetWire.Core.Net;

namespace NetWire.Core.Tests.Net;

/// <summary>One channel's end: the first reason wins under races, everyone observes it, loops are guarded.</summary>
public sealed class ChannelLifetimeTests
{
    [Fact]
    public async Task Abort_RacedFromManyThreads_TheFirstReasonWins_AndTheCallbackRunsOnce()
    {
        for (var round = 0; round < 200; round++)
        {
            var calls = 0;
            Exception? seen = null;
            using var lifetime = new ChannelLifetime((_, error) =>
            {
                Interlocked.Increment(ref calls);
                seen = error;
            });
            using var start = new Barrier(8);
            var reasons = Enumerable.Range(0, 8).Select(i => new InvalidOperationException($"reason {i}")).ToArray();
            var won = new bool[8];
            var racers = Enumerable.Range(0, 8).Select(i => Task.Run(() =>
            {
                start.SignalAndWait();
                won[i] = lifetime.Abort(reasons[i]);
            })).ToArray();
            await Task.WhenAll(racers);

            var winner = Assert.Single(Enumerable.Range(0, 8), i => won[i]);
            Assert.Equal(1, calls);
            Assert.Same(reasons[winner], seen);
            Assert.Same(reasons[winner], lifetime.Error);
            Assert.Equal(EndReason.Failed, lifetime.Reason);
            Assert.True(lifetime.Token.IsCancellationRequested);
        }
    }

    [Fact]
    public void Observers_SeeNothingBeforeTheAbort_AndTheFirstReasonAfterIt()
    {
        using var lifetime = new ChannelLifetime();
        Assert.False(lifetime.IsAborted);
        Assert.Null(lifetime.Reason);
        Assert.Null(lifetime.Error);
        Assert.False(lifetime.Token.IsCancellationRequested);

        var first = new EndOfStreamException("client disconnecting");
        Assert.True(lifetime.Abort(EndReason.PeerLeft, first));
        Assert.False(lifetime.Abort(new TimeoutException("later")));
        Assert.False(lifetime.Abort(EndReason.Stopping, new OperationCanceledException()));

        Assert.True(lifetime.IsAborted);
        Assert.Equal(EndReason.PeerLeft, lifetime.Reason);
        Assert.Same(first, lifetime.Error);
        Assert.True(lifetime.Token.IsCancellationRequested);
    }

    [Fact]
    public void TheCallback_RunsWithTheReasonSet_AfterTheTokenIsCancelled()
    {
        ChannelLifetime? lifetime = null;
        bool? cancelledInCallback = null;
        EndReason? reasonInCallback = null;
        lifetime = new ChannelLifetime((reason, _) =>
        {
            cancelledInCallback = lifetime!.Token.IsCancellationRequested;
            reasonInCallback = lifetime.Reason;
            Assert.Equal(EndReason.ProtocolError, reason);
        });
        using (lifetime)
        {
            lifetime.Abort(EndReason.ProtocolError, new InvalidDataException("bad message"));
        }

        Assert.True(cancelledInCallback);
        Assert.Equal(EndReason.ProtocolError, reasonInCallback);
    }

    [Fact]
    public void TheCallback_Runs_EvenWhenACancellationCallbackThrows()
    {
        var calls = 0;
        using var lifetime = new ChannelLifetime((_, _) => calls++);
        using var registration = lifetime.Token.Register(static () => throw new InvalidOperationException("a broken registration"));

        Assert.Throws<AggregateException>(() => lifetime.Abort(new EndOfStreamException()));
        Assert.Equal(1, calls);
        Assert.Equal(EndReason.PeerClosed, lifetime.Reason);
    }

    [Fact]
    public async Task GuardAsync_ALoopThatReturns_EndsTheChannelWithItsReason()
    {
        using var lifetime = new ChannelLifetime();
        await lifetime.GuardAsync(static _ => Task.CompletedTask, EndReason.PeerClosed, "client closed the channel");

        Assert.Equal(EndReason.PeerClosed, lifetime.Reason);
        Assert.Equal("client closed the channel", Assert.IsType<EndOfStreamException>(lifetime.Error).Message);
    }

    [Fact]
    public async Task GuardAsync_WithoutAReason_ALoopThatReturns_LeavesTheChannelRunning()
    {
        using var lifetime = new ChannelLifetime();
        await lifetime.GuardAsync(static _ => Task.CompletedTask);
        Assert.False(lifetime.IsAborted);
    }

    [Fact]
    public async Task GuardAsync_ALoopThatThrows_EndsTheChannelWithItsException()
    {
        using var lifetime = new ChannelLifetime();
        var violation = new TimeoutException("no answer");
        await lifetime.GuardAsync(async _ =>
        {
            await Task.Yield();
            throw violation;
        });

        Assert.Same(violation, lifetime.Error);
        Assert.Equal(EndReason.TimedOut, lifetime.Reason);
    }

    [Fact]
    public async Task GuardAsync_TheCancellationThatFollowsAnAbort_LeavesTheFirstReason()
    {
        using var lifetime = new ChannelLifetime();
        var waiting = lifetime.GuardAsync(static token => Task.Delay(Timeout.Infinite, token), EndReason.PeerClosed, "returned");
        Assert.False(waiting.IsCompleted);

        var first = new IOException("the socket failed");
        lifetime.Abort(EndReason.ConnectionLost, first);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Same(first, lifetime.Error);
        Assert.Equal(EndReason.ConnectionLost, lifetime.Reason);
    }

    [Fact]
    public async Task GuardAsync_AfterTheAbort_DoesNotStartTheLoop()
    {
        using var lifetime = new ChannelLifetime();
        lifetime.Abort(EndReason.Stopping, new OperationCanceledException("server stopping"));
        var started = false;
        await lifetime.GuardAsync(_ =>
        {
            started = true;
            return Task.CompletedTask;
        }, EndReason.PeerClosed, "returned");

        Assert.False(started);
        Assert.Equal(EndReason.Stopping, lifetime.Reason);
    }

    [Fact]
    public void AbortWhenCancelled_TheServerStop_EndsTheChannelAsStopping()
    {
        using var stop = new CancellationTokenSource();
        using var lifetime = new ChannelLifetime();
        using (lifetime.AbortWhenCancelled("server stopping", stop.Token))
        {
            stop.Cancel();
        }

        Assert.Equal(EndReason.Stopping, lifetime.Reason);
        Assert.Equal("server stopping", Assert.IsType<OperationCanceledException>(lifetime.Error).Message);
    }

    [Fact]
    public void AbortWhenCancelled_AfterTheRegistrationEnds_TheStopChangesNothing()
    {
        using var stop = new CancellationTokenSource();
        using var lifetime = new ChannelLifetime();
        lifetime.AbortWhenCancelled("server stopping", stop.Token).Dispose();
        stop.Cancel();
        Assert.False(lifetime.IsAborted);
    }

    [Fact]
    public void Abort_AfterDispose_StillRecordsTheReason_AndRunsTheCallback()
    {
        var calls = 0;
        var lifetime = new ChannelLifetime((_, _) => calls++);
        var token = lifetime.Token;
        lifetime.Dispose();

        Assert.True(lifetime.Abort(new EndOfStreamException()));
        Assert.Equal(1, calls);
        Assert.Equal(EndReason.PeerClosed, lifetime.Reason);
        Assert.Equal(token, lifetime.Token);
    }

    [Fact]
    public void ReasonOf_AnExceptionThatKnowsItsReason_SaysSo()
    {
        Assert.Equal(EndReason.ProtocolError, ChannelLifetime.ReasonOf(new ViolationException()));
        Assert.Equal(EndReason.TimedOut, ChannelLifetime.ReasonOf(new TimeoutException()));
        Assert.Equal(EndReason.Stopping, ChannelLifetime.ReasonOf(new TaskCanceledException()));
        Assert.Equal(EndReason.PeerClosed, ChannelLifetime.ReasonOf(new EndOfStreamException()));
        Assert.Equal(EndReason.Failed, ChannelLifetime.ReasonOf(new IOException("not a socket")));
    }

    private sealed class ViolationException : Exception, IHasEndReason
    {
        public EndReason EndReason => EndReason.ProtocolError;
    }
}
