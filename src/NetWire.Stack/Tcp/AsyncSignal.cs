namespace NetWire.Stack.Tcp;

/// <summary>
/// An auto-reset wake-up for one waiting loop. <see cref="Set"/> is called under the gateway
/// lock, so the count never exceeds one; a set before the wait makes the wait complete at once,
/// so a loop that checks its condition under the lock and then waits never misses a wake-up.
/// Never disposed: a SemaphoreSlim holds no kernel handle unless AvailableWaitHandle is used.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "SemaphoreSlim without AvailableWaitHandle owns no handle.")]
internal sealed class AsyncSignal
{
    private readonly SemaphoreSlim _semaphore = new(0, 1);

    public void Set()
    {
        if (_semaphore.CurrentCount == 0)
        {
            try
            {
                _semaphore.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    public Task WaitAsync(CancellationToken cancellationToken) => _semaphore.WaitAsync(cancellationToken);
}
