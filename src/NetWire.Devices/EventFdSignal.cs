using Microsoft.Win32.SafeHandles;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices;

/// <summary>
/// A <see cref="ThreadSignal"/> on a Linux eventfd: <see cref="Set"/> is one write(2) and a
/// sleeping <see cref="Wait"/> one poll(2) and one read(2), where the monitor-based signal cost
/// each side several futex calls per wake-up (docs/performance.md, "netwire bridge"). A set
/// after disposal does nothing: the fd is guarded by a safe handle, so a late producer never
/// writes into a descriptor number that was reused.
/// </summary>
internal sealed unsafe class EventFdSignal : ThreadSignal, IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly int _fd;

    private EventFdSignal(int fd)
    {
        _fd = fd;
        _handle = new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>An eventfd signal, or the monitor-based one when no eventfd can be made (out of descriptors).</summary>
    public static ThreadSignal Create()
    {
        var fd = Libc.EventFd(0, Libc.EventFdFlags);
        return fd >= 0 ? new EventFdSignal(fd) : new ThreadSignal();
    }

    /// <summary>Disposes <paramref name="signal"/> when it is an eventfd signal.</summary>
    public static void Release(ThreadSignal signal) => (signal as EventFdSignal)?.Dispose();

    /// <inheritdoc/>
    public override void Set()
    {
        var added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            ulong one = 1;
            _ = Libc.Write(_fd, (byte*)&one, sizeof(ulong));
        }
        catch (ObjectDisposedException)
        {
            // Disposed: the thread that waited on it has ended.
        }
        finally
        {
            if (added)
            {
                _handle.DangerousRelease();
            }
        }
    }

    /// <inheritdoc/>
    public override bool Wait(int timeoutMs)
    {
        if (TryConsume())
        {
            return true;
        }

        var pollFd = new Libc.PollFd { Fd = _fd, Events = Libc.PollIn };
        return Libc.Poll(&pollFd, 1, timeoutMs) > 0 && TryConsume();
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>Reads (resets) the counter: true when it was set. The fd is non-blocking.</summary>
    private bool TryConsume()
    {
        ulong value;
        return Libc.Read(_fd, (byte*)&value, sizeof(ulong)) == sizeof(ulong);
    }
}
