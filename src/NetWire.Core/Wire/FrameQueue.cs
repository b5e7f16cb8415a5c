using System.Threading.Channels;
using NetWire.Core.Frames;

namespace NetWire.Core.Wire;

/// <summary>
/// A bounded queue of frames towards one device: many producers (whoever calls SendPacket),
/// one consumer (the device's send loop). Full mode is backpressure: producers are expected to
/// test <see cref="CanWrite"/> or wait on <see cref="WaitWritableAsync"/>; a write into a full
/// queue is refused rather than growing it.
/// </summary>
/// <remarks>
/// Built on a bounded <see cref="Channel{T}"/> in Wait mode, whose waiter operations are reused
/// objects, so a steady stream of frames allocates nothing here. A consumer on a dedicated thread
/// sleeps through <see cref="TryParkReader"/> and its own <see cref="SetReaderSignal"/> instead of
/// <see cref="WaitToReadAsync"/>: the channel completes a wait on the thread pool, so waking a
/// thread that way takes two hand-offs (writer to pool worker, worker to the thread), the
/// signal one (docs/performance.md, "User-mode gateway"). A producer on a dedicated thread
/// likewise sleeps on a full queue through <see cref="TryArmRoomSignal"/>: the consumer sets its
/// signal directly once half the queue is free, so the producer wakes once per half queue
/// instead of once per freed slot, and no thread-pool worker runs in between
/// (docs/performance.md, "netwire bridge").
/// </remarks>
public sealed class FrameQueue
{
    private readonly Channel<Frame> _channel;
    private readonly ReusableWait _writableWaiter = new();

    /// <summary>Wakes a consumer sleeping on a dedicated thread; set once, before its first park.</summary>
    private Action? _readerSignal;

    /// <summary>1 while the consumer sleeps (or is about to) with nothing to read; taken back to 0 by whoever wakes it.</summary>
    private int _readerParked;

    /// <summary>The signal of a producer sleeping on a full queue (<see cref="TryArmRoomSignal"/>); null when none. Taken by whoever sets it.</summary>
    private ThreadSignal? _roomSignal;

    /// <summary>Creates a queue holding at most <paramref name="capacity"/> frames.</summary>
    public FrameQueue(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _channel = Channel.CreateBounded<Frame>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
    }

    /// <summary>The most frames the queue holds.</summary>
    public int Capacity { get; }

    /// <summary>Frames queued now.</summary>
    public int Count => _channel.Reader.Count;

    /// <summary>True once the queue was completed and its last frame taken.</summary>
    public bool IsCompleted => _channel.Reader.Completion.IsCompleted;

    /// <summary>True while a write would be accepted.</summary>
    public bool CanWrite => _channel.Reader.Count < Capacity && !_channel.Reader.Completion.IsCompleted;

    /// <summary>Queues a frame; false (the caller keeps ownership) when full or completed.</summary>
    public bool TryWrite(Frame frame)
    {
        if (!_channel.Writer.TryWrite(frame))
        {
            return false;
        }

        // A full fence between the write above and reading the flag, as in TryParkReader.
        if (_readerSignal is { } signal && Interlocked.CompareExchange(ref _readerParked, 0, 1) == 1)
        {
            signal();
        }

        return true;
    }

    /// <summary>
    /// Queues frames in order until the queue is full; returns how many were queued (the caller
    /// keeps the rest). A parked consumer is signalled once, after the last, instead of at the
    /// first: it then takes the whole run in one go.
    /// </summary>
    public int TryWriteMany(ReadOnlySpan<Frame> frames)
    {
        var written = 0;
        while (written < frames.Length && _channel.Writer.TryWrite(frames[written]))
        {
            written++;
        }

        // A full fence between the writes above and reading the flag, as in TryParkReader.
        if (written > 0 && _readerSignal is { } signal && Interlocked.CompareExchange(ref _readerParked, 0, 1) == 1)
        {
            signal();
        }

        return written;
    }

    /// <summary>
    /// Gives the queue the wake-up of a consumer that runs on a dedicated thread: it is called
    /// (on the writer's thread; it must be quick and must not block) when a frame arrives or the
    /// queue completes while the consumer is parked. Set once, before the first
    /// <see cref="TryParkReader"/>.
    /// </summary>
    public void SetReaderSignal(Action signal) => _readerSignal = signal;

    /// <summary>
    /// The consumer is about to sleep until its signal: true when it may (the queue is empty and
    /// open; the next write or the completion will call the signal), false when there is
    /// something to do. After waking, for whatever reason, it calls <see cref="UnparkReader"/>.
    /// </summary>
    public bool TryParkReader()
    {
        Interlocked.Exchange(ref _readerParked, 1);
        if (_channel.Reader.Count > 0 || _channel.Reader.Completion.IsCompleted)
        {
            Volatile.Write(ref _readerParked, 0);
            return false;
        }

        return true;
    }

    /// <summary>The consumer woke (signalled, or its own timeout): no signal is owed any more.</summary>
    public void UnparkReader() => Volatile.Write(ref _readerParked, 0);

    /// <summary>
    /// A producer on a dedicated thread is about to sleep on a full queue: true when it may sleep
    /// on <paramref name="signal"/> (the queue is full and open; the signal is set once at most
    /// half the queue is taken, or when the queue completes), false when there is room already,
    /// or when another producer's signal is armed (then it waits with <see cref="WaitWritableAsync"/>).
    /// One signal is armed at a time; an armed signal stays armed across the producer's timeouts.
    /// </summary>
    public bool TryArmRoomSignal(ThreadSignal signal)
    {
        ArgumentNullException.ThrowIfNull(signal);
        var armed = Interlocked.CompareExchange(ref _roomSignal, signal, null);
        if (armed is not null && armed != signal)
        {
            return false;
        }

        // A full fence (the exchange above) between arming and reading the count: a take after the
        // count was read sees the armed signal.
        if (CanWrite || _channel.Reader.Completion.IsCompleted)
        {
            Interlocked.CompareExchange(ref _roomSignal, null, signal);
            return false;
        }

        return true;
    }

    /// <summary>Completes when there is room, or when the queue was completed.</summary>
    public ValueTask WaitWritableAsync(CancellationToken cancellationToken)
    {
        // Each ValueTask is consumed once: checked for synchronous completion, or handed on whole.
#pragma warning disable CA2012
        var wait = _channel.Writer.WaitToWriteAsync(cancellationToken);
#pragma warning restore CA2012
        if (wait.IsCompletedSuccessfully)
        {
            return default;
        }

        // The usual case is one producer waiting: it reuses the queue's adapter and allocates
        // nothing. A second concurrent waiter falls back to an async method.
        return _writableWaiter.TryStart(wait, out var adapted) ? adapted : AwaitAsync(wait);

        static async ValueTask AwaitAsync(ValueTask<bool> wait) => await wait.ConfigureAwait(false);
    }

    /// <summary>Takes the next frame if one is queued.</summary>
    public bool TryRead(out Frame frame)
    {
        var read = _channel.Reader.TryRead(out frame!);

        // Also after a failed read: the channel's lock orders the read of the signal after this
        // consumer's earlier takes, so a producer that armed meanwhile is not left asleep.
        if (Volatile.Read(ref _roomSignal) is not null)
        {
            WakeProducerAtHalf();
        }

        return read;
    }

    /// <summary>Sets an armed producer's signal once at most half the queue is in use.</summary>
    private void WakeProducerAtHalf()
    {
        if (_channel.Reader.Count <= Capacity / 2)
        {
            Interlocked.Exchange(ref _roomSignal, null)?.Set();
        }
    }

    /// <summary>Waits until a frame is queued; false once the queue is completed and empty.</summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => _channel.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>Refuses further writes and returns every queued frame to its pool, counting them.</summary>
    /// <returns>How many frames were discarded.</returns>
    public int CompleteAndDrain()
    {
        _channel.Writer.TryComplete();
        Interlocked.Exchange(ref _roomSignal, null)?.Set();
        if (_readerSignal is { } signal && Interlocked.CompareExchange(ref _readerParked, 0, 1) == 1)
        {
            signal();
        }

        var discarded = 0;
        while (_channel.Reader.TryRead(out var frame))
        {
            frame.Dispose();
            discarded++;
        }

        return discarded;
    }

    /// <summary>
    /// Presents a channel's <see cref="ValueTask{Boolean}"/> wait as a plain <see cref="ValueTask"/>
    /// without allocating: one instance serves one waiter at a time.
    /// </summary>
    private sealed class ReusableWait : System.Threading.Tasks.Sources.IValueTaskSource
    {
        private readonly Action _onInnerCompleted;
        private System.Threading.Tasks.Sources.ManualResetValueTaskSourceCore<bool> _core;
        private System.Runtime.CompilerServices.ConfiguredValueTaskAwaitable<bool>.ConfiguredValueTaskAwaiter _inner;

        /// <summary>1 while a waiter owns this instance; taken and released with Interlocked.</summary>
        private int _busy;

        public ReusableWait()
        {
            _core.RunContinuationsAsynchronously = true;
            _onInnerCompleted = OnInnerCompleted;
        }

        public bool TryStart(ValueTask<bool> wait, out ValueTask adapted)
        {
            if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            {
                adapted = default;
                return false;
            }

            _core.Reset();
            _inner = wait.ConfigureAwait(false).GetAwaiter();
            adapted = new ValueTask(this, _core.Version);
            _inner.UnsafeOnCompleted(_onInnerCompleted);
            return true;
        }

        public void GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                Volatile.Write(ref _busy, 0);
            }
        }

        public System.Threading.Tasks.Sources.ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, System.Threading.Tasks.Sources.ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        private void OnInnerCompleted()
        {
            try
            {
                _inner.GetResult();
                _inner = default;
                _core.SetResult(true);
            }
            catch (Exception ex)
            {
                _inner = default;
                _core.SetException(ex);
            }
        }
    }
}
