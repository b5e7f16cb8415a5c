namespace NetWire.Bench;

/// <summary>
/// Keeps at most <c>size</c> frames between a sender and the consumer that counts them, so a
/// host-to-guest sender never overfills the TAP's kernel queue (1000 frames by default) and
/// burns a core on frames the kernel would drop. The sender sleeps once the window is full and
/// is woken when half of it has drained.
/// </summary>
internal sealed class FlowWindow : IDisposable
{
    private readonly long _size;
    private readonly ManualResetEventSlim _wake = new(false, 0);

    /// <summary>Frames the consumer counted; written by the consumer thread only.</summary>
    private long _received;

    /// <summary>Frames known lost in the kernel (credited by the sender from tx_dropped).</summary>
    private long _lost;

    /// <summary>The received count the waiting sender needs; written by the sender before <see cref="_waiting"/>.</summary>
    private long _target;

    /// <summary>1 while the sender sleeps; set by the sender, cleared by whoever wakes it.</summary>
    private int _waiting;

    /// <summary>A window of <paramref name="size"/> frames; 0 or less means no limit.</summary>
    public FlowWindow(long size)
    {
        _size = size;
    }

    /// <summary>Frames the consumer has counted.</summary>
    public long Received => Volatile.Read(ref _received);

    /// <summary>Called by the consumer after it counted <paramref name="frames"/> more.</summary>
    public void Add(long frames)
    {
        var received = Interlocked.Add(ref _received, frames);
        if (Volatile.Read(ref _waiting) != 0 && received + Volatile.Read(ref _lost) >= Volatile.Read(ref _target)
            && Interlocked.Exchange(ref _waiting, 0) != 0)
        {
            _wake.Set();
        }
    }

    /// <summary>
    /// Called by the sender before it sends <paramref name="batch"/> more frames (at most half the
    /// window); returns once they fit. <paramref name="lost"/> reads the kernel's drops since the
    /// start: frames the consumer will never count.
    /// </summary>
    public void WaitForRoom(long sent, int batch, Func<long> lost)
    {
        if (_size <= 0 || sent + batch - Received - Volatile.Read(ref _lost) <= _size)
        {
            return;
        }

        Volatile.Write(ref _target, sent - (_size / 2));
        _wake.Reset();
        Interlocked.Exchange(ref _waiting, 1);
        while (Received + Volatile.Read(ref _lost) < _target)
        {
            if (!_wake.Wait(20))
            {
                // Nothing drained for a while: frames the kernel dropped will never be counted.
                Volatile.Write(ref _lost, lost());
            }
        }

        Interlocked.Exchange(ref _waiting, 0);
    }

    /// <inheritdoc/>
    public void Dispose() => _wake.Dispose();
}
