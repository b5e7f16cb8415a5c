using System.Runtime.InteropServices;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Tap;

/// <summary>
/// A burst of TAP reads in one system call: an io_uring whose submission queue takes up to
/// <see cref="Slots"/> reads (<c>IORING_OP_READ</c> with <c>RWF_NOWAIT</c>) on the non-blocking
/// TAP fd, each into a slot of its own as large as any frame the TAP hands over (a read into a
/// smaller buffer truncates the frame without a trace), submitted and reaped with one
/// io_uring_enter(2). A TAP gives one frame per read; the reads run one after another, in
/// submission order, within the call, so the slots hold frames in the TAP's order, and a read that
/// finds the kernel's queue empty completes with -EAGAIN instead of waiting (docs/performance.md,
/// "Towards a stream guest: the TAP reader sends its own bursts"). For one reader thread.
/// </summary>
internal sealed unsafe class TapReadRing : IDisposable
{
    /// <summary>Reads per burst.</summary>
    public const int Slots = 32;

    /// <summary>A slot's result before its completion arrived.</summary>
    private const int NoResult = int.MinValue;

    private const int SetupSyscall = 425;
    private const int EnterSyscall = 426;
    private const int EnterGetEvents = 1;
    private const byte OpRead = 22;
    private const uint RwfNoWait = 0x8;
    private const int ProtReadWrite = 0x3;
    private const int MapSharedPopulate = 0x01 | 0x8000;
    private const long OffSqRing = 0;
    private const long OffCqRing = 0x8000000;
    private const long OffSqes = 0x10000000;
    private const int SqeLength = 64;
    private const int CqeLength = 16;

    private readonly int _ringFd;
    private readonly int _tapFd;
    private readonly nint _sq;
    private readonly nuint _sqLength;
    private readonly nint _cq;
    private readonly nuint _cqLength;
    private readonly nint _sqes;
    private readonly nuint _sqesLength;
    private readonly uint* _sqTail;
    private readonly uint _sqMask;
    private readonly uint* _sqArray;
    private readonly uint* _cqHead;
    private readonly uint* _cqTail;
    private readonly uint _cqMask;
    private readonly byte* _cqes;
    private readonly int _slotLength;
    private readonly byte[] _slots;
    private readonly byte* _slotBase;
    private readonly int[] _results = new int[Slots];

    private TapReadRing(int ringFd, int tapFd, int slotLength, byte* parameters)
    {
        _ringFd = ringFd;
        _tapFd = tapFd;
        _slotLength = slotLength;
        var sqEntries = *(uint*)parameters;
        var cqEntries = *(uint*)(parameters + 4);

        // struct io_sqring_offsets at 40 and io_cqring_offsets at 80 of struct io_uring_params.
        var sqOff = (uint*)(parameters + 40);
        var cqOff = (uint*)(parameters + 80);
        _sqLength = sqOff[6] + (sqEntries * 4);
        _cqLength = cqOff[5] + (cqEntries * CqeLength);
        _sqesLength = sqEntries * SqeLength;
        _sq = Map(_sqLength, OffSqRing);
        try
        {
            _cq = Map(_cqLength, OffCqRing);
            try
            {
                _sqes = Map(_sqesLength, OffSqes);
            }
            catch (IOException)
            {
                Libc.Munmap(_cq, _cqLength);
                throw;
            }
        }
        catch (IOException)
        {
            // TryCreate closes the ring's fd; the maps made before the failure go here.
            Libc.Munmap(_sq, _sqLength);
            throw;
        }

        _sqTail = (uint*)(_sq + (nint)sqOff[1]);
        _sqMask = *(uint*)(_sq + (nint)sqOff[2]);
        _sqArray = (uint*)(_sq + (nint)sqOff[6]);
        _cqHead = (uint*)(_cq + (nint)cqOff[0]);
        _cqTail = (uint*)(_cq + (nint)cqOff[1]);
        _cqMask = *(uint*)(_cq + (nint)cqOff[2]);
        _cqes = (byte*)(_cq + (nint)cqOff[5]);
        _slots = GC.AllocateUninitializedArray<byte>(Slots * slotLength, pinned: true);
        _slotBase = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_slots, 0);
    }

    /// <summary>
    /// A ring for <paramref name="tapFd"/> with slots of <paramref name="slotLength"/> bytes (the
    /// largest frame the TAP hands over), or null where io_uring cannot be had (an old kernel,
    /// io_uring turned off, a seccomp filter): then the reader reads frame by frame.
    /// </summary>
    public static TapReadRing? TryCreate(int tapFd, int slotLength)
    {
        var parameters = stackalloc byte[120];
        new Span<byte>(parameters, 120).Clear();
        var ringFd = (int)Libc.Syscall(SetupSyscall, Slots, (nint)parameters, 0, 0, 0, 0);
        if (ringFd < 0)
        {
            return null;
        }

        try
        {
            return new TapReadRing(ringFd, tapFd, slotLength, parameters);
        }
        catch (IOException)
        {
            Libc.Close(ringFd);
            return null;
        }
    }

    /// <summary>
    /// True for a read's outcome that says this kernel's io_uring cannot read the TAP the way the
    /// ring asks (-EINVAL: no IORING_OP_READ; -EOPNOTSUPP: no RWF_NOWAIT on it): such a read takes
    /// no frame, and the reader goes on with read(2).
    /// </summary>
    public static bool IsUnsupported(int result) => result is -Libc.EInval or -Libc.EOpNotSupp;

    /// <summary>The frame in slot <paramref name="slot"/> after <see cref="ReadBurst"/>, <paramref name="length"/> bytes (its result).</summary>
    public ReadOnlySpan<byte> Frame(int slot, int length) => new(_slotBase + ((nint)slot * _slotLength), length);

    /// <summary>Slot <paramref name="slot"/>'s outcome after <see cref="ReadBurst"/>: the frame's length, or a negative errno (-EAGAIN: the kernel's queue was empty).</summary>
    public int Result(int slot) => _results[slot];

    /// <summary>
    /// Reads up to <paramref name="count"/> frames (at most <see cref="Slots"/>) with one system
    /// call and returns how many slots have an outcome (<see cref="Result"/>), in order; fewer than
    /// <paramref name="count"/>, or a negative errno when the call itself failed, means the ring
    /// is not usable any more (dispose it and read frame by frame).
    /// </summary>
    public int ReadBurst(int count)
    {
        var tail = Volatile.Read(ref *_sqTail);
        for (var i = 0; i < count; i++)
        {
            var index = (tail + (uint)i) & _sqMask;
            var sqe = (byte*)_sqes + ((nint)index * SqeLength);
            new Span<byte>(sqe, SqeLength).Clear();

            // struct io_uring_sqe: opcode, flags, ioprio, fd, off (-1: the file position), addr, len, rw_flags, user_data.
            sqe[0] = OpRead;
            *(int*)(sqe + 4) = _tapFd;
            *(ulong*)(sqe + 8) = ulong.MaxValue;
            *(ulong*)(sqe + 16) = (ulong)(_slotBase + ((nint)i * _slotLength));
            *(uint*)(sqe + 24) = (uint)_slotLength;
            *(uint*)(sqe + 28) = RwfNoWait;
            *(ulong*)(sqe + 32) = (ulong)i;
            _sqArray[index] = index;
            _results[i] = NoResult;
        }

        Volatile.Write(ref *_sqTail, tail + (uint)count);
        nint submitted;
        do
        {
            // RWF_NOWAIT: every read completes within the call (a frame or -EAGAIN), none waits.
            submitted = Libc.Syscall(EnterSyscall, _ringFd, count, count, EnterGetEvents, 0, 0);
        }
        while (submitted < 0 && Marshal.GetLastPInvokeError() == Libc.EIntr);

        if (submitted < 0)
        {
            return -Marshal.GetLastPInvokeError();
        }

        var head = *_cqHead;
        var end = Volatile.Read(ref *_cqTail);
        while (head != end)
        {
            var cqe = _cqes + ((nint)(head & _cqMask) * CqeLength);
            var slot = *(ulong*)cqe;
            if (slot < Slots)
            {
                _results[slot] = *(int*)(cqe + 8);
            }

            head++;
        }

        Volatile.Write(ref *_cqHead, head);
        var done = 0;
        while (done < count && _results[done] != NoResult)
        {
            done++;
        }

        return done;
    }

    public void Dispose()
    {
        Libc.Munmap(_sqes, _sqesLength);
        Libc.Munmap(_cq, _cqLength);
        Libc.Munmap(_sq, _sqLength);
        Libc.Close(_ringFd);
    }

    private nint Map(nuint length, long offset)
    {
        var address = Libc.Mmap(0, length, ProtReadWrite, MapSharedPopulate, _ringFd, (nint)offset);
        if (address == -1)
        {
            throw new IOException($"io_uring mmap failed: {Libc.Describe(Marshal.GetLastPInvokeError())}");
        }

        return address;
    }
}
