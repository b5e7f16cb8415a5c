namespace NetWire.Core.Wire;

/// <summary>
/// An auto-reset wake-up for one dedicated thread: <see cref="Set"/> from any thread (cheap,
/// never blocks), <see cref="Wait"/> on the owner's thread with a timeout, so the owner can look
/// at its cancellation token between waits. Allocates nothing after construction. A
/// <see cref="FrameQueue.SetReaderSignal"/> target for device threads. Device ends replace it
/// with an eventfd (NetWire.Devices' EventFdSignal): a monitor's wake-up costs both threads
/// several futex calls (the woken thread takes the lock the setter holds).
/// </summary>
public class ThreadSignal
{
    /// <summary>Guards <see cref="_set"/>; the sleeping thread waits on it with <see cref="Monitor"/>.</summary>
    private readonly object _gate = new();

    /// <summary>True from a <see cref="Set"/> until the next <see cref="Wait"/> consumes it.</summary>
    private bool _set;

    /// <summary>Wakes the thread in <see cref="Wait"/>, or makes its next wait return at once.</summary>
    public virtual void Set()
    {
        lock (_gate)
        {
            _set = true;
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>Sleeps until <see cref="Set"/> or <paramref name="timeoutMs"/>; true when set.</summary>
    public virtual bool Wait(int timeoutMs)
    {
        lock (_gate)
        {
            if (!_set && !Monitor.Wait(_gate, timeoutMs))
            {
                return false;
            }

            var set = _set;
            _set = false;
            return set;
        }
    }
}
