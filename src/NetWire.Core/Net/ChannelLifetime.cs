using System.Threading.Channels;

namespace NetWire.Core.Net;

/// <summary>
/// The end of one channel, session or relay, shared by its loops: the first reason wins and
/// everything else observes it.
/// </summary>
/// <remarks>
/// How this works. <see cref="Abort(EndReason, Exception)"/> records the first reason
/// (Interlocked), cancels <see cref="Token"/>, then runs the owner's <c>aborting</c> callback once
/// (complete the send queue, close a socket, count, log). Cancelling first lets pending socket
/// operations end before a socket is closed under them, which would make the close abortive (an
/// RST instead of a FIN). Every later call returns false and changes nothing, so
/// a loop, a timer, the server's stop and a protocol violation may all race to end the channel.
/// Loops run under <see cref="GuardAsync(Func{CancellationToken, Task}, EndReason, string)"/>:
/// a loop is not started once the channel is aborted; a loop that returns ends the channel with
/// the reason given for it; a loop that throws ends it with its exception, and when that
/// exception is the abort's own echo (a cancellation, the closed send queue) the first reason
/// simply stands. <see cref="Dispose"/> releases the token source; an abort after it still
/// records its reason and runs the callback, and <see cref="Token"/> stays readable.
/// <code>
///   receive loop ─┐
///   send loop    ─┼─▶ Abort(reason) ──first?──▶ Token cancelled, aborting(reason, error)
///   server stop  ─┤                   └─later─▶ false (the first reason stands)
///   violation    ─┘
/// </code>
/// </remarks>
public sealed class ChannelLifetime : IDisposable
{
    private readonly CancellationTokenSource _aborted = new();

    /// <summary>The owner's one-time work at the abort; runs after <see cref="Token"/> is cancelled.</summary>
    private readonly Action<EndReason, Exception>? _aborting;

    /// <summary>The first abort; written once by <see cref="Abort(EndReason, Exception)"/> (Interlocked), read by everyone.</summary>
    private Ending? _ending;

    /// <param name="aborting">Run once, by the first abort, after <see cref="Token"/> is cancelled; must not block.</param>
    public ChannelLifetime(Action<EndReason, Exception>? aborting = null)
    {
        _aborting = aborting;
        Token = _aborted.Token;
    }

    /// <summary>Cancelled at the abort: the token every loop and send of the channel runs with.</summary>
    public CancellationToken Token { get; }

    /// <summary>True once the channel is aborted.</summary>
    public bool IsAborted => Volatile.Read(ref _ending) is not null;

    /// <summary>Why the channel ended, once it has.</summary>
    public EndReason? Reason => Volatile.Read(ref _ending)?.Reason;

    /// <summary>The first abort's exception, once the channel has ended.</summary>
    public Exception? Error => Volatile.Read(ref _ending)?.Error;

    /// <summary>
    /// The reason an exception stands for when nothing more is known: what it says of itself
    /// (<see cref="IHasEndReason"/>), cancellation is <see cref="EndReason.Stopping"/>, a timeout
    /// <see cref="EndReason.TimedOut"/>, end of stream <see cref="EndReason.PeerClosed"/>, a socket
    /// failure <see cref="EndReason.ConnectionLost"/>, anything else <see cref="EndReason.Failed"/>.
    /// </summary>
    public static EndReason ReasonOf(Exception error) => error switch
    {
        IHasEndReason known => known.EndReason,
        OperationCanceledException => EndReason.Stopping,
        TimeoutException => EndReason.TimedOut,
        EndOfStreamException => EndReason.PeerClosed,
        _ when IoErrors.IsSocketFailure(error) => EndReason.ConnectionLost,
        _ => EndReason.Failed,
    };

    /// <summary>
    /// What an operation of the channel throws because the channel was aborted under it: its
    /// token was cancelled, its send queue completed, or its token source disposed.
    /// </summary>
    public static bool IsAbortEcho(Exception ex) => IoErrors.IsShutdown(ex) || ex is ChannelClosedException;

    /// <summary>Ends the channel with the reason <paramref name="error"/> stands for (<see cref="ReasonOf"/>); true for the first abort.</summary>
    public bool Abort(Exception error) => Abort(ReasonOf(error), error);

    /// <summary>Ends the channel; true for the first abort, false when it had already ended (the first reason stands).</summary>
    public bool Abort(EndReason reason, Exception error)
    {
        ArgumentNullException.ThrowIfNull(error);
        if (Volatile.Read(ref _ending) is not null || Interlocked.CompareExchange(ref _ending, new Ending(reason, error), null) is not null)
        {
            return false;
        }

        try
        {
            _aborted.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The owner has finished with the channel; nothing is left to cancel.
        }
        finally
        {
            _aborting?.Invoke(reason, error);
        }

        return true;
    }

    /// <summary>
    /// Aborts the channel (<see cref="EndReason.Stopping"/>, <paramref name="why"/>) when
    /// <paramref name="stopping"/> is cancelled. Dispose the registration before disposing this.
    /// </summary>
    public CancellationTokenRegistration AbortWhenCancelled(string why, CancellationToken stopping) =>
        stopping.Register(static state =>
        {
            var (lifetime, why) = ((ChannelLifetime, string))state!;
            lifetime.Abort(EndReason.Stopping, new OperationCanceledException(why));
        }, (this, why));

    /// <summary>
    /// Runs one loop of the channel with <see cref="Token"/> unless the channel has ended; a loop
    /// that throws ends the channel with its exception, a loop that returns does not end it.
    /// </summary>
    public Task GuardAsync(Func<CancellationToken, Task> loop) => RunGuardedAsync(loop, null, null);

    /// <summary>
    /// Runs one loop of the channel with <see cref="Token"/> unless the channel has ended; a loop
    /// that throws ends the channel with its exception, a loop that returns ends it with
    /// <paramref name="whenDone"/> (an <see cref="EndOfStreamException"/> saying <paramref name="message"/>).
    /// </summary>
    public Task GuardAsync(Func<CancellationToken, Task> loop, EndReason whenDone, string message) => RunGuardedAsync(loop, whenDone, message);

    /// <summary>Releases the token source once the channel's loops have ended; a later abort still records its reason.</summary>
    public void Dispose() => _aborted.Dispose();

    private async Task RunGuardedAsync(Func<CancellationToken, Task> loop, EndReason? whenDone, string? message)
    {
        if (IsAborted)
        {
            return;
        }

        try
        {
            await loop(Token).ConfigureAwait(false);
            if (whenDone is { } reason)
            {
                Abort(reason, new EndOfStreamException(message));
            }
        }
        catch (Exception ex)
        {
            // After the abort this is its echo (IsAbortEcho) and the first reason stands.
            Abort(ex);
        }
    }

    private sealed record Ending(EndReason Reason, Exception Error);
}
