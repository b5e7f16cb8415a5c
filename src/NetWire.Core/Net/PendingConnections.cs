namespace NetWire.Core.Net;

/// <summary>
/// The connections a listener has accepted but not yet admitted (the SPICE link stage, the
/// header of a migration state stream): bounded in number and in time, and when full the
/// oldest silent one makes room for the newest.
/// </summary>
/// <remarks>
/// How this works. Each accepted connection is <see cref="Admit"/>ted and gets a
/// <see cref="PendingConnection"/> whose <see cref="PendingConnection.Token"/> ends its pending
/// stage: cancelled by the deadline, by the listener's stop, or by eviction. When
/// <see cref="Capacity"/> connections are already pending, the new one is admitted all the same
/// and the oldest pending connection that has not yet said anything complete
/// (<see cref="PendingConnection.MarkProgress"/>) is evicted; when every pending connection has
/// progressed, the oldest of all goes. A flood of connections that never speak therefore
/// cannot lock out a real client, which completes its pending stage in a few round trips while
/// the flood's connections age towards the front:
/// <code>
///   accept ─▶ Admit ─▶ [oldest ... newest] ─▶ Dispose (linked, refused, failed: leaves the set)
///                        │ full?
///                        └─▶ the oldest not progressed (else the oldest) is evicted: its Token is cancelled
/// </code>
/// The set is a linked list under one lock; admission and disposal are O(1), eviction scans
/// from the oldest and stops at the first silent connection.
/// </remarks>
public sealed class PendingConnections
{
    private readonly LinkedList<PendingConnection> _pending = new();
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private long _admitted;
    private long _evicted;
    private long _timedOut;

    /// <param name="capacity">Connections pending at once before the oldest silent one is evicted.</param>
    /// <param name="deadline">Time a connection has to finish its pending stage.</param>
    /// <param name="time">The clock of the deadline.</param>
    public PendingConnections(int capacity, TimeSpan deadline, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(deadline, TimeSpan.Zero);
        Capacity = capacity;
        Deadline = deadline;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Connections pending at once before the oldest silent one is evicted.</summary>
    public int Capacity { get; }

    /// <summary>Time a connection has to finish its pending stage.</summary>
    public TimeSpan Deadline { get; }

    /// <summary>Connections pending now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>Connections admitted so far.</summary>
    public long Admitted => Interlocked.Read(ref _admitted);

    /// <summary>Connections evicted to make room for a newer one.</summary>
    public long Evicted => Interlocked.Read(ref _evicted);

    /// <summary>Connections whose deadline passed while pending (counted by <see cref="PendingConnection.TimedOut"/>).</summary>
    public long TimedOut => Interlocked.Read(ref _timedOut);

    /// <summary>
    /// Admits a newly accepted connection. When the set is full, the oldest silent connection is
    /// evicted first (its token is cancelled and <see cref="PendingConnection.WasEvicted"/> is
    /// true); the caller of the evicted connection closes it.
    /// </summary>
    /// <param name="stopping">The listener's stop; cancels the new connection's token too.</param>
    /// <returns>The new connection; dispose it when its pending stage ends, however it ends.</returns>
    public PendingConnection Admit(CancellationToken stopping)
    {
        var connection = new PendingConnection(this, Deadline, _time, stopping);
        PendingConnection? victim = null;
        lock (_lock)
        {
            if (_pending.Count >= Capacity)
            {
                victim = OldestSilent();
                _pending.Remove(victim.Node!);
                victim.Node = null;
            }

            connection.Node = _pending.AddLast(connection);
        }

        Interlocked.Increment(ref _admitted);
        if (victim is not null)
        {
            Interlocked.Increment(ref _evicted);
            victim.Evict();
        }

        return connection;
    }

    internal void Leave(PendingConnection connection)
    {
        lock (_lock)
        {
            if (connection.Node is { } node)
            {
                _pending.Remove(node);
                connection.Node = null;
            }
        }
    }

    internal void CountTimedOut() => Interlocked.Increment(ref _timedOut);

    private PendingConnection OldestSilent()
    {
        for (var node = _pending.First; node is not null; node = node.Next)
        {
            if (!node.Value.HasProgressed)
            {
                return node.Value;
            }
        }

        return _pending.First!.Value;
    }
}
