using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NetWire.Core.Frames;

namespace NetWire.Core.Wire;

/// <summary>
/// A ring of frames from one producer thread to one consumer thread, with no lock and no
/// allocation per frame: what <c>netwire replay</c> hands frames to a local end through
/// (docs/performance.md, "Replay").
/// </summary>
/// <remarks>
/// How this works: the slots are preallocated native memory, <see cref="SlotBytes"/> each, 64-byte
/// aligned and never moved, so a consumer can give their addresses to the kernel (an
/// <c>iovec</c> for <c>sendmmsg</c>) without copying or pinning. The producer copies a frame
/// straight into the next free slot (<see cref="TryWrite"/>); a frame longer than a slot goes in a
/// pooled <see cref="Frame"/> kept beside it. Written slots become visible to the consumer only
/// when the producer publishes them (<see cref="Publish"/>, one release store per batch); the
/// consumer takes what is published as one batch (<see cref="WaitReadable"/>, <see cref="Length"/>,
/// <see cref="SlotAddress"/>) and gives the slots back together (<see cref="Release"/>).
///
///     slot index:   head ............ tail ........ pending ........ head + capacity
///                   |  consumer's      | written,     | free
///                   |  batch           | unpublished  |
///
/// Full mode is backpressure: <see cref="TryWrite"/> refuses, and the producer waits in
/// <see cref="WaitWritable"/> until the consumer releases slots; nothing is dropped. Either side
/// waits by spinning a few dozen rounds (the other is usually running on the other core) and then sleeping on
/// its <see cref="ThreadSignal"/>; the other side wakes it after a full fence when it sees the
/// parked flag, so no wake-up goes through the thread pool. Completion (<see cref="Complete"/>)
/// lets a consumer tell "nothing yet" from "nothing more".
/// </remarks>
public sealed unsafe class FrameRing : IDisposable
{
    /// <summary>Bytes per slot: a 1518-byte frame (VLAN-tagged Ethernet) fits, with room to spare.</summary>
    public const int SlotBytes = 2048;

    /// <summary>
    /// A ring's usual size, 2 MiB of slots: on two busy cores a side is often descheduled for a
    /// while, and a ring four times the default queue lets the other go on meanwhile
    /// (docs/performance.md, "Replay": 3.7 M against 2.0 M frames/s with 256 slots).
    /// </summary>
    public const int DefaultCapacity = 1024;

    /// <summary>Spins before a side sleeps; the other side's batch takes about this long.</summary>
    private const int SpinRounds = 64;

    private readonly FramePool _pool;
    private readonly int _mask;

    /// <summary>Native slot memory, capacity times <see cref="SlotBytes"/>; freed by <see cref="Dispose"/>.</summary>
    private byte* _slots;

    /// <summary>Frame length per slot; written by the producer before it publishes the slot, read by the consumer after.</summary>
    private readonly int[] _lengths;

    /// <summary>A frame longer than <see cref="SlotBytes"/>, per slot (else null); set by the producer, disposed by the consumer's release.</summary>
    private readonly Frame?[] _large;

    /// <summary>The producer's and the consumer's positions, each on its own cache line.</summary>
    private Positions _positions;

    /// <summary>Slots written but not published yet; the producer's only.</summary>
    private long _pending;

    /// <summary>The head as the producer last read it (slots before it are free); the producer's only, so it reads the consumer's cache line only when the ring looks full.</summary>
    private long _knownHead;

    /// <summary>Wakes the consumer; set by the producer (publish, complete) while <see cref="_consumerParked"/>.</summary>
    private readonly ThreadSignal _consumerSignal = new();

    /// <summary>Wakes the producer; set by the consumer (release) while <see cref="_producerParked"/>.</summary>
    private readonly ThreadSignal _producerSignal = new();

    /// <summary>1 while the consumer sleeps (or is about to); taken back to 0 by whoever wakes it.</summary>
    private int _consumerParked;

    /// <summary>1 while the producer sleeps (or is about to); taken back to 0 by whoever wakes it.</summary>
    private int _producerParked;

    /// <summary>1 once the producer has published its last frame.</summary>
    private int _completed;

    /// <summary>Creates a ring of at least <paramref name="capacity"/> slots (rounded up to a power of two); long frames are rented from <paramref name="pool"/>.</summary>
    public FrameRing(int capacity, FramePool pool)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1 << 20);
        Capacity = (int)BitOperations.RoundUpToPowerOf2((uint)capacity);
        _mask = Capacity - 1;
        _pool = pool;
        _lengths = new int[Capacity];
        _large = new Frame?[Capacity];
        _slots = (byte*)NativeMemory.AlignedAlloc((nuint)Capacity * SlotBytes, 64);
    }

    /// <summary>Slots in the ring.</summary>
    public int Capacity { get; }

    /// <summary>Frames published and not yet released: in the ring or in the consumer's hands.</summary>
    public int Count => (int)(Volatile.Read(ref _positions.Tail) - Volatile.Read(ref _positions.Head));

    /// <summary>True once <see cref="Complete"/> was called.</summary>
    public bool IsCompleted => Volatile.Read(ref _completed) != 0;

    // Producer side.

    /// <summary>
    /// Copies <paramref name="frame"/> into the next free slot, to be published with the next
    /// <see cref="Publish"/>; false when the ring is full (publish, then <see cref="WaitWritable"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWrite(ReadOnlySpan<byte> frame)
    {
        var at = _pending;
        if (at - _knownHead >= Capacity)
        {
            _knownHead = Volatile.Read(ref _positions.Head);
            if (at - _knownHead >= Capacity)
            {
                return false;
            }
        }

        var index = (int)at & _mask;
        if (frame.Length <= SlotBytes)
        {
            frame.CopyTo(new Span<byte>(_slots + ((nint)index * SlotBytes), SlotBytes));
        }
        else
        {
            _large[index] = _pool.Rent(frame);
        }

        _lengths[index] = frame.Length;
        _pending = at + 1;
        return true;
    }

    /// <summary>Frames written since the last <see cref="Publish"/>.</summary>
    public int Unpublished => (int)(_pending - _positions.Tail);

    /// <summary>Makes every written frame visible to the consumer and wakes it if it sleeps.</summary>
    public void Publish()
    {
        if (_pending == _positions.Tail)
        {
            return;
        }

        Volatile.Write(ref _positions.Tail, _pending);

        // A full fence between the store above and reading the flag, as in WaitReadable.
        if (Interlocked.CompareExchange(ref _consumerParked, 0, 1) == 1)
        {
            _consumerSignal.Set();
        }
    }

    /// <summary>
    /// Waits until a slot is free: spins a few dozen rounds, then sleeps until the consumer releases slots
    /// or <paramref name="cancellationToken"/> fires (which throws). Publish first.
    /// </summary>
    public void WaitWritable(CancellationToken cancellationToken)
    {
        var spinner = default(SpinWait);
        for (var i = 0; i < SpinRounds; i++)
        {
            if (_pending - Volatile.Read(ref _positions.Head) < Capacity)
            {
                return;
            }

            spinner.SpinOnce(sleep1Threshold: -1);
        }

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Interlocked.Exchange(ref _producerParked, 1);
            if (_pending - Volatile.Read(ref _positions.Head) < Capacity)
            {
                Volatile.Write(ref _producerParked, 0);
                return;
            }

            // The timeout only bounds how late a cancellation is seen.
            _producerSignal.Wait(50);
            Volatile.Write(ref _producerParked, 0);
        }
    }

    /// <summary>Publishes what is written and tells the consumer no more frames come.</summary>
    public void Complete()
    {
        Publish();
        Volatile.Write(ref _completed, 1);
        if (Interlocked.CompareExchange(ref _consumerParked, 0, 1) == 1)
        {
            _consumerSignal.Set();
        }
    }

    // Consumer side.

    /// <summary>
    /// Waits until frames are published: spins a few dozen rounds, then sleeps until the producer publishes
    /// or completes, or <paramref name="cancellationToken"/> fires (which throws). Returns how
    /// many frames the batch holds (at most <paramref name="max"/>), 0 once the ring is completed
    /// and empty. Frame i of the batch is <see cref="Length"/>(i), <see cref="Span"/>(i).
    /// </summary>
    public int WaitReadable(int max, CancellationToken cancellationToken)
    {
        var spinner = default(SpinWait);
        var head = _positions.Head;
        for (var i = 0; ; i++)
        {
            var available = Volatile.Read(ref _positions.Tail) - head;
            if (available > 0)
            {
                return (int)Math.Min(available, max);
            }

            if (Volatile.Read(ref _completed) != 0)
            {
                // Complete publishes before it sets the flag: look once more.
                available = Volatile.Read(ref _positions.Tail) - head;
                return (int)Math.Min(available, max);
            }

            if (i < SpinRounds)
            {
                spinner.SpinOnce(sleep1Threshold: -1);
                continue;
            }

            cancellationToken.ThrowIfCancellationRequested();
            Interlocked.Exchange(ref _consumerParked, 1);
            if (Volatile.Read(ref _positions.Tail) != head || Volatile.Read(ref _completed) != 0)
            {
                Volatile.Write(ref _consumerParked, 0);
                continue;
            }

            _consumerSignal.Wait(50);
            Volatile.Write(ref _consumerParked, 0);
        }
    }

    /// <summary>The length of frame <paramref name="i"/> of the consumer's batch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Length(int i) => _lengths[(int)(_positions.Head + i) & _mask];

    /// <summary>The bytes of frame <paramref name="i"/> of the consumer's batch; valid until <see cref="Release"/>.</summary>
    public ReadOnlySpan<byte> Span(int i)
    {
        var index = (int)(_positions.Head + i) & _mask;
        return _large[index] is { } frame ? frame.Span : new ReadOnlySpan<byte>(_slots + ((nint)index * SlotBytes), _lengths[index]);
    }

    /// <summary>
    /// Where frame <paramref name="i"/> of the consumer's batch lies, for a system call; null for
    /// a frame longer than <see cref="SlotBytes"/> (use <see cref="Span"/>). Valid until <see cref="Release"/>.
    /// </summary>
    public byte* SlotAddress(int i)
    {
        var index = (int)(_positions.Head + i) & _mask;
        return _large[index] is null ? _slots + ((nint)index * SlotBytes) : null;
    }

    /// <summary>Gives the first <paramref name="count"/> frames of the batch back to the producer.</summary>
    public void Release(int count)
    {
        var head = _positions.Head;
        Debug.Assert(count >= 0 && count <= Volatile.Read(ref _positions.Tail) - head, "released more than was published");
        for (var i = 0; i < count; i++)
        {
            var index = (int)(head + i) & _mask;
            if (_large[index] is { } frame)
            {
                _large[index] = null;
                frame.Dispose();
            }
        }

        Volatile.Write(ref _positions.Head, head + count);

        // A full fence between the store above and reading the flag, as in WaitWritable.
        if (Interlocked.CompareExchange(ref _producerParked, 0, 1) == 1)
        {
            _producerSignal.Set();
        }
    }

    /// <summary>
    /// Releases every published frame without delivering it; returns how many there were. Only
    /// when the consumer no longer runs (the end was stopped).
    /// </summary>
    public int Discard()
    {
        var count = Count;
        Release(count);
        return count;
    }

    /// <summary>Frees the slots; the ring must no longer be used by either side.</summary>
    public void Dispose()
    {
        if (_slots is null)
        {
            return;
        }

        for (var i = 0; i < _large.Length; i++)
        {
            _large[i]?.Dispose();
            _large[i] = null;
        }

        NativeMemory.AlignedFree(_slots);
        _slots = null;
    }

    /// <summary>Tail (the producer's published position) and head (the consumer's), a cache line apart from each other and from the rest.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Positions
    {
        /// <summary>Slots before this are published; written by the producer only.</summary>
        [FieldOffset(64)]
        public long Tail;

        /// <summary>Slots before this are released; written by the consumer only.</summary>
        [FieldOffset(128)]
        public long Head;
    }
}
