using System.Diagnostics;
using System.Runtime.InteropServices;
using NetWire.Core.Wire;
using NetWire.Stack.Interop;

namespace NetWire.Stack;

/// <summary>
/// The gateway's own thread: one epoll loop over the host TCP sockets, the wake-up of the
/// guest's frames and the gateway's periodic tick, and nothing else, the way passt and slirp run
/// their whole stack.
/// </summary>
/// <remarks>
/// <para>
/// How this works: host sockets are non-blocking and registered edge-triggered for input, output
/// and hang-up; every readiness is handed to its <see cref="IHandler"/> under the gateway lock,
/// which reads or writes until the kernel says EAGAIN and remembers the readiness otherwise (a
/// ring towards the guest with no room is read once ACKs make room, not on the next event). The
/// guest side (<see cref="IGuestWork"/>, the gateway end's queue of guest frames) wakes the loop
/// through an eventfd that the queue's writer signals directly, and its frames are handled on
/// this thread between socket events (or, queued while this thread sleeps, by the queuing
/// thread itself under the gateway lock: the gateway end decides). The periodic tick (<see cref="SetTick"/>: retransmissions,
/// TIME-WAIT, idle flows) runs here too, when epoll_wait's timeout runs out or after an event
/// once it is due: a thread-pool timer woke a pool worker a hundred times a second, which then
/// spun in sched_yield looking for more work and contended for the gateway lock with this thread
/// (docs/performance.md, "Connection setup on the gateway's thread").
/// </para>
/// <para>
/// One input descriptor may be watched as well (<see cref="WatchInput"/>: the namespace's TAP in
/// <c>netwire run</c>), level-triggered: when it is readable its <see cref="IInputSource"/> reads
/// a bounded burst of frames on this thread into the guest queue, which this thread then handles
/// in the same turn. The guest's frames and the host sockets' readiness so wake one thread, as
/// in passt, instead of the TAP's reader and this one (docs/performance.md, "Connection setup:
/// one thread for the TAP and the host sockets"). A source whose receiver is full stops the
/// watch (the descriptor leaves the epoll set) until it resumes it.
/// </para>
/// <para>
/// Why a thread of its own (docs/performance.md, "User-mode gateway"): with an async loop per
/// socket direction every readiness went through the runtime's socket thread to a thread-pool
/// worker, and every hand-over between the TAP's threads, the pump and the socket loops woke a
/// worker that then spun looking for more: about 40 context switches per short connection, and
/// most of a bulk transfer's CPU spent in sched_yield. Here a readiness costs one epoll event on a
/// thread that is awake anyway while there is traffic.
/// </para>
/// <para>
/// Registrations live in a slot table guarded by the gateway lock; an event carries its slot and
/// the slot's generation, so an event fetched for a socket that was closed meanwhile (by an
/// earlier event of the same batch) is recognised and dropped. The loop stops at
/// <see cref="Stop"/>, called under the gateway lock (it only sets a flag and wakes the thread);
/// after it nothing registers, and the thread closes the epoll descriptor on its way out, and
/// the eventfd once no <see cref="Wake"/> is using it (a wake from the guest's side may still
/// come in meanwhile, and must not write into a descriptor number that was reused).
/// </para>
/// </remarks>
internal sealed unsafe class HostPoller
{
    private const int MaxEvents = 64;

    /// <summary>Epoll data of the eventfd: no slot has it.</summary>
    private const ulong WakeToken = ulong.MaxValue;

    /// <summary>Epoll data of the watched input descriptor: no slot has it.</summary>
    private const ulong InputToken = ulong.MaxValue - 1;

    /// <summary>How long the loop sleeps with nothing to do before it looks at the stop flag anyway.</summary>
    private const int IdleTimeoutMs = 1000;

    private readonly Gateway _gateway;
    private readonly int _epoll;
    private readonly int _eventFd;
    private readonly Thread _thread;

    /// <summary>Handlers by slot; null for a free slot. Guarded by the gateway lock.</summary>
    private IHandler?[] _handlers = new IHandler?[64];

    /// <summary>Generation of each slot, bumped when it is freed. Guarded by the gateway lock.</summary>
    private uint[] _generations = new uint[64];

    /// <summary>Free slots. Guarded by the gateway lock.</summary>
    private readonly Stack<int> _free = new();

    /// <summary>Slots ever used: the next new slot. Guarded by the gateway lock.</summary>
    private int _used;

    /// <summary>The guest side run between socket events; set once by the gateway end before traffic.</summary>
    private volatile IGuestWork? _guestWork;

    /// <summary>The periodic tick run under the gateway lock; null until <see cref="SetTick"/>.</summary>
    private volatile Action? _tick;

    /// <summary>The tick's period in <see cref="Stopwatch"/> ticks; written before <see cref="_tick"/>.</summary>
    private long _tickPeriod;

    /// <summary>When the tick is due next, in <see cref="Stopwatch"/> ticks. Poller thread only.</summary>
    private long _nextTick;

    /// <summary>Set by <see cref="Stop"/> under the gateway lock; the loop ends at its next turn.</summary>
    private volatile bool _stopping;

    /// <summary>1 once the eventfd is about to close: <see cref="Wake"/> writes no more.</summary>
    private int _closing;

    /// <summary><see cref="Wake"/> calls in progress; the eventfd closes only at 0 after <see cref="_closing"/>.</summary>
    private int _waking;

    /// <summary>Guards <see cref="_input"/> and <see cref="_inputClosed"/>; held while the input source reads.</summary>
    private readonly Lock _inputLock = new();

    /// <summary>The watched input descriptor; null when none. Guarded by <see cref="_inputLock"/>.</summary>
    private InputWatch? _input;

    /// <summary>True once the loop has ended and closes the epoll descriptor. Guarded by <see cref="_inputLock"/>.</summary>
    private bool _inputClosed;

    /// <summary>1 when a paused input asked to be watched again; taken back to 0 by the loop.</summary>
    private int _inputResume;

    /// <summary>A host socket's readiness, handled under the gateway lock on the poller thread.</summary>
    public interface IHandler
    {
        /// <summary>Epoll reported <paramref name="events"/> (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).</summary>
        void OnReady(uint events);
    }

    /// <summary>Work the loop does besides sockets: the guest's frames.</summary>
    public interface IGuestWork
    {
        /// <summary>Handles what is waiting (takes the gateway lock itself); false when it stopped with more left.</summary>
        bool Run();

        /// <summary>The loop is about to sleep: true when it may (the next frame will call <see cref="Wake"/>).</summary>
        bool TryPark();

        /// <summary>The loop woke up.</summary>
        void Unpark();
    }

    public HostPoller(Gateway gateway)
    {
        _gateway = gateway;
        _epoll = Libc.EpollCreate1(Libc.EpollCloExec);
        if (_epoll < 0)
        {
            throw new IOException($"epoll_create1 failed: {Libc.Describe(Marshal.GetLastPInvokeError())}");
        }

        _eventFd = Libc.EventFd(0, Libc.EfdNonBlock | Libc.EfdCloExec);
        if (_eventFd < 0 || Control(Libc.EpollCtlAdd, _eventFd, Libc.EpollIn, WakeToken) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Libc.Close(_epoll);
            throw new IOException($"eventfd failed: {Libc.Describe(errno)}");
        }

        _thread = new Thread(Loop) { IsBackground = true, Name = "gateway" };
        _thread.Start();
    }

    /// <summary>Lets the guest side run on this thread. Set before guest frames flow.</summary>
    public void SetGuestWork(IGuestWork work)
    {
        _guestWork = work;
        Wake();
    }

    /// <summary>
    /// Runs <paramref name="tick"/> on this thread under the gateway lock every
    /// <paramref name="period"/> (at least: a busy turn may delay it a little). Set once, before traffic.
    /// </summary>
    public void SetTick(Action tick, TimeSpan period)
    {
        _tickPeriod = Math.Max(1, (long)(period.TotalSeconds * Stopwatch.Frequency));
        _tick = tick;
        Wake();
    }

    /// <summary>
    /// Watches <paramref name="fd"/> for input, level-triggered, and calls <paramref name="source"/>
    /// on this thread while it is readable (outside the gateway lock), until the returned watch is
    /// disposed. One at a time. After the loop has ended the watch does nothing.
    /// </summary>
    public IInputWatch WatchInput(int fd, IInputSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_inputLock)
        {
            if (_input is not null)
            {
                throw new InvalidOperationException("the gateway watches an input descriptor already");
            }

            var watch = new InputWatch(this, fd, source);
            if (_inputClosed)
            {
                return watch;
            }

            if (Control(Libc.EpollCtlAdd, fd, Libc.EpollIn, InputToken) != 0)
            {
                throw new IOException($"epoll_ctl add failed: {Libc.Describe(Marshal.GetLastPInvokeError())}");
            }

            _input = watch;
            return watch;
        }
    }

    /// <summary>
    /// Watches <paramref name="fd"/> (edge-triggered input, output and hang-up) for
    /// <paramref name="handler"/>; returns the token to <see cref="Unregister"/> with. Caller holds
    /// the gateway lock.
    /// </summary>
    public ulong Register(int fd, IHandler handler) => Register(fd, handler, output: true);

    /// <summary>
    /// As <see cref="Register(int, IHandler)"/>, with output readiness watched only when
    /// <paramref name="output"/> (else from <see cref="WatchOutput"/> on): a socket that is
    /// writable already (a connect that finished at once) would otherwise wake the loop for an
    /// EPOLLOUT edge nobody waits for. Caller holds the gateway lock.
    /// </summary>
    public ulong Register(int fd, IHandler handler, bool output)
    {
        if (_stopping)
        {
            throw new ObjectDisposedException(nameof(HostPoller), "the gateway has stopped");
        }

        int slot;
        if (_free.Count > 0)
        {
            slot = _free.Pop();
        }
        else
        {
            slot = _used++;
            if (slot == _handlers.Length)
            {
                Array.Resize(ref _handlers, slot * 2);
                Array.Resize(ref _generations, slot * 2);
            }
        }

        _handlers[slot] = handler;
        var token = ((ulong)_generations[slot] << 32) | (uint)slot;
        if (Control(Libc.EpollCtlAdd, fd, Events(output), token) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            Free(slot);
            throw new IOException($"epoll_ctl add failed: {Libc.Describe(errno)}");
        }

        return token;
    }

    /// <summary>
    /// Adds output readiness to a registration made without it (a send met EAGAIN): the next
    /// EPOLLOUT edge, or the current one when the socket is writable again already, reaches the
    /// handler. False when epoll refused (the caller gives the socket up). Caller holds the gateway lock.
    /// </summary>
    public bool WatchOutput(ulong token, int fd)
    {
        var slot = (int)(uint)token;
        if (_stopping || _handlers[slot] is null || _generations[slot] != (uint)(token >> 32))
        {
            return true;
        }

        return Control(Libc.EpollCtlMod, fd, Events(output: true), token) == 0;
    }

    /// <summary>Stops watching <paramref name="fd"/>; call before closing it. Caller holds the gateway lock.</summary>
    public void Unregister(ulong token, int fd)
    {
        var slot = (int)(uint)token;
        if (_handlers[slot] is null || _generations[slot] != (uint)(token >> 32))
        {
            return;
        }

        if (!_stopping)
        {
            // After Stop the thread may have closed the epoll descriptor; closing fd leaves it anyway.
            Control(Libc.EpollCtlDel, fd, 0, 0);
        }

        Free(slot);
    }

    /// <summary>Wakes the loop (from any thread): the guest has frames, or <see cref="Stop"/> was called.</summary>
    public void Wake()
    {
        Interlocked.Increment(ref _waking);
        if (Volatile.Read(ref _closing) == 0)
        {
            ulong one = 1;
            Libc.Write(_eventFd, &one, sizeof(ulong));
        }

        Interlocked.Decrement(ref _waking);
    }

    /// <summary>Ends the loop at its next turn; the thread closes the descriptors. Caller holds the gateway lock.</summary>
    public void Stop()
    {
        _stopping = true;
        Wake();
    }

    private void Free(int slot)
    {
        _handlers[slot] = null;
        _generations[slot]++;
        _free.Push(slot);
    }

    private static uint Events(bool output) =>
        Libc.EpollIn | Libc.EpollRdHup | Libc.EpollEt | (output ? Libc.EpollOut : 0);

    private int Control(int operation, int fd, uint events, ulong token)
    {
        var ev = stackalloc byte[16];
        *(uint*)ev = events;
        *(ulong*)(ev + Libc.EpollDataOffset) = token;
        return Libc.EpollCtl(_epoll, operation, fd, ev);
    }

    private void Loop()
    {
        var events = (byte*)NativeMemory.Alloc((nuint)(MaxEvents * Libc.EpollEventSize));
        try
        {
            while (!_stopping)
            {
                if (Volatile.Read(ref _inputResume) != 0)
                {
                    ResumeInput();
                }

                var work = _guestWork;
                var parked = work is not null && work.TryPark();
                var timeout = work is null || parked ? IdleTimeoutMs : 0;
                if (timeout > 0 && _tick is not null)
                {
                    // Sleep no longer than until the tick is due (rounded up: waking early only loops).
                    var due = _nextTick - Stopwatch.GetTimestamp();
                    timeout = due <= 0 ? 0 : (int)Math.Min(IdleTimeoutMs, ((due * 1000) + Stopwatch.Frequency - 1) / Stopwatch.Frequency);
                }

                var n = Libc.EpollWait(_epoll, events, MaxEvents, timeout);
                if (parked)
                {
                    work!.Unpark();
                }

                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EIntr)
                    {
                        continue;
                    }

                    Environment.FailFast($"the gateway's epoll_wait failed: {Libc.Describe(errno)}");
                }

                if (n > 0 && Dispatch(events, n))
                {
                    ReadInput();
                }

                work?.Run();
                RunTickIfDue();
            }
        }
        catch (Exception ex)
        {
            // A dead event loop would leave every connection hanging: fail fast instead.
            Environment.FailFast("the gateway's poller failed", ex);
        }
        finally
        {
            NativeMemory.Free(events);
            lock (_inputLock)
            {
                // A watch disposed from here on leaves the (closed, maybe reused) descriptor alone.
                _inputClosed = true;
                _input = null;
            }

            Libc.Close(_epoll);
            Interlocked.Exchange(ref _closing, 1);
            var spin = default(SpinWait);
            while (Volatile.Read(ref _waking) != 0)
            {
                spin.SpinOnce();
            }

            Libc.Close(_eventFd);
        }
    }

    private void RunTickIfDue()
    {
        var tick = _tick;
        if (tick is null || _stopping)
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        if (now < _nextTick)
        {
            return;
        }

        // From now, not from when it was due: a late tick is not made up with a burst of ticks.
        _nextTick = now + _tickPeriod;
        lock (_gateway.Sync)
        {
            tick();
        }
    }

    /// <summary>The input descriptor is readable: its source reads a burst; one that returns false leaves the epoll set until it resumes.</summary>
    private void ReadInput()
    {
        lock (_inputLock)
        {
            if (_input is not { Paused: false } input)
            {
                return;
            }

            if (!input.Source.OnReadable() && _input == input && !input.Paused)
            {
                // Removed rather than watched for nothing: epoll reports an error or hang-up even then.
                Control(Libc.EpollCtlDel, input.Fd, 0, 0);
                input.Paused = true;
            }
        }
    }

    /// <summary>Watches a paused input again (its source asked for it).</summary>
    private void ResumeInput()
    {
        Interlocked.Exchange(ref _inputResume, 0);
        lock (_inputLock)
        {
            if (_input is { Paused: true } input && !_inputClosed)
            {
                input.Paused = false;
                if (Control(Libc.EpollCtlAdd, input.Fd, Libc.EpollIn, InputToken) != 0)
                {
                    Environment.FailFast($"the gateway cannot watch its input again: {Libc.Describe(Marshal.GetLastPInvokeError())}");
                }
            }
        }

        // Readable already, or not: either way the next epoll_wait says so (level-triggered).
    }

    /// <summary>Hands the events to their handlers; true when the input descriptor is among them (read after, outside the gateway lock).</summary>
    private bool Dispatch(byte* events, int count)
    {
        var input = false;
        lock (_gateway.Sync)
        {
            for (var i = 0; i < count; i++)
            {
                var ev = events + (i * Libc.EpollEventSize);
                var token = *(ulong*)(ev + Libc.EpollDataOffset);
                if (token == WakeToken)
                {
                    ulong value;
                    Libc.Read(_eventFd, &value, sizeof(ulong));
                    continue;
                }

                if (token == InputToken)
                {
                    input = true;
                    continue;
                }

                var slot = (int)(uint)token;
                if (slot < _used && _handlers[slot] is { } handler && _generations[slot] == (uint)(token >> 32))
                {
                    handler.OnReady(*(uint*)ev);
                }
            }
        }

        return input;
    }

    /// <summary>The watched input descriptor and its source.</summary>
    private sealed class InputWatch(HostPoller poller, int fd, IInputSource source) : IInputWatch
    {
        public int Fd { get; } = fd;

        public IInputSource Source { get; } = source;

        /// <summary>Out of the epoll set until resumed. Guarded by the poller's input lock.</summary>
        public bool Paused { get; set; }

        public void Resume()
        {
            Volatile.Write(ref poller._inputResume, 1);
            poller.Wake();
        }

        public void Dispose()
        {
            lock (poller._inputLock)
            {
                if (poller._input != this)
                {
                    return;
                }

                if (!poller._inputClosed && !Paused)
                {
                    poller.Control(Libc.EpollCtlDel, Fd, 0, 0);
                }

                poller._input = null;
            }
        }
    }
}
