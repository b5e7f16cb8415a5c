namespace NetWire.Core.Wire;

/// <summary>
/// An end's event loop that can watch another end's descriptor for input and read it on its own
/// thread: the user-mode gateway's poller reads the namespace's TAP this way, so the guest's
/// frames and the host sockets' readiness wake one thread instead of two (docs/performance.md,
/// "Connection setup: one thread for the TAP and the host sockets").
/// </summary>
public interface IInputLoop
{
    /// <summary>
    /// Watches <paramref name="fd"/> (level-triggered input) and calls
    /// <paramref name="source"/> on the loop's thread while it is readable, until the returned
    /// watch is disposed. The loop may not run yet: it starts watching when it does. One watch at a time.
    /// </summary>
    IInputWatch WatchInput(int fd, IInputSource source);
}
