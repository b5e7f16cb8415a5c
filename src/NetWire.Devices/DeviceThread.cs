namespace NetWire.Devices;

/// <summary>Dedicated threads for device loops that make blocking system calls.</summary>
internal static class DeviceThread
{
    /// <summary>Runs <paramref name="loop"/> on a new background thread; the task ends with it.</summary>
    public static Task Run(string name, Action loop)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Start(name, () =>
        {
            try
            {
                loop();
                done.TrySetResult();
            }
            catch (OperationCanceledException)
            {
                done.TrySetResult();
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        });
        return done.Task;
    }

    /// <summary>
    /// Runs <paramref name="loop"/> on a new background thread; the task ends with its result, or
    /// as cancelled when it throws <see cref="OperationCanceledException"/> (as an async loop's would).
    /// </summary>
    public static Task<T> Run<T>(string name, Func<T> loop)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Start(name, () =>
        {
            try
            {
                done.TrySetResult(loop());
            }
            catch (OperationCanceledException ex)
            {
                done.TrySetCanceled(ex.CancellationToken);
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
            }
        });
        return done.Task;
    }

    private static void Start(string name, ThreadStart body) =>
        new Thread(body) { IsBackground = true, Name = name }.Start();

    /// <summary>
    /// Runs a device's loops together until all end. The first loop to fail cancels the others
    /// (a reader that died must not leave its writer waiting forever) and its exception is rethrown.
    /// </summary>
    public static async Task RunAllAsync(CancellationToken cancellationToken, params Func<CancellationToken, Task>[] loops)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var tasks = new Task[loops.Length];
        for (var i = 0; i < loops.Length; i++)
        {
            tasks[i] = Guard(loops[i], linked);
        }

        await Task.WhenAll(tasks).ConfigureAwait(false);

        static async Task Guard(Func<CancellationToken, Task> loop, CancellationTokenSource linked)
        {
            try
            {
                await loop(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (linked.IsCancellationRequested)
            {
            }
            catch
            {
                await linked.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>Blocks the device thread until <paramref name="wait"/> completes.</summary>
    public static void Wait(ValueTask wait)
    {
        if (wait.IsCompletedSuccessfully)
        {
            return;
        }

        wait.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>Blocks the device thread until <paramref name="wait"/> completes, returning its result.</summary>
    public static bool Wait(ValueTask<bool> wait) => wait.IsCompletedSuccessfully ? wait.Result : wait.AsTask().GetAwaiter().GetResult();
}
