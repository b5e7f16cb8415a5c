namespace NetWire.Core.Net;

/// <summary>One connection in a <see cref="PendingConnections"/> set.</summary>
public sealed class PendingConnection : IDisposable
{
    private readonly PendingConnections _owner;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _linked;
    private readonly CancellationToken _stopping;
    private int _evicted;
    private int _progressed;
    private int _timeoutCounted;
    private int _disposed;

    internal PendingConnection(PendingConnections owner, TimeSpan deadline, TimeProvider time, CancellationToken stopping)
    {
        _owner = owner;
        _stopping = stopping;
        _deadline = new CancellationTokenSource(deadline, time);
        _linked = CancellationTokenSource.CreateLinkedTokenSource(_deadline.Token, stopping);
        Token = _linked.Token;
    }

    /// <summary>Ends the pending stage: cancelled by the deadline, the listener's stop, or eviction.</summary>
    public CancellationToken Token { get; }

    /// <summary>True when the connection was evicted to make room for a newer one.</summary>
    public bool WasEvicted => Volatile.Read(ref _evicted) != 0;

    /// <summary>True once the peer has sent something complete (<see cref="MarkProgress"/>).</summary>
    public bool HasProgressed => Volatile.Read(ref _progressed) != 0;

    /// <summary>
    /// True when the deadline ended the pending stage (not eviction, not the listener's stop).
    /// The first call that finds it so counts it in <see cref="PendingConnections.TimedOut"/>.
    /// </summary>
    public bool TimedOut
    {
        get
        {
            var timedOut = _deadline.IsCancellationRequested && !WasEvicted && !_stopping.IsCancellationRequested;
            if (timedOut && Interlocked.Exchange(ref _timeoutCounted, 1) == 0)
            {
                _owner.CountTimedOut();
            }

            return timedOut;
        }
    }

    /// <summary>The node in the owner's list while pending; guarded by the owner's lock.</summary>
    internal LinkedListNode<PendingConnection>? Node { get; set; }

    /// <summary>
    /// The peer has sent something complete (a whole link message, a stream header): eviction
    /// passes over this connection while silent ones remain.
    /// </summary>
    public void MarkProgress() => Interlocked.CompareExchange(ref _progressed, 1, 0);

    /// <summary>Leaves the set; the pending stage is over (admitted, refused or failed).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _owner.Leave(this);
        _linked.Dispose();
        _deadline.Dispose();
    }

    internal void Evict()
    {
        Volatile.Write(ref _evicted, 1);
        try
        {
            _deadline.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed between its removal from the set and now: its stage was over anyway.
        }
    }
}
