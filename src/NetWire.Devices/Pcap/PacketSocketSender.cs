using System.Runtime.InteropServices;
using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Devices.Pcap;

/// <summary>
/// Sends whole Ethernet frames on one interface through a Linux packet socket, many per
/// <c>sendmmsg(2)</c>: what a <c>pcap:</c> host end injects with.
/// </summary>
/// <remarks>
/// How this works: an <c>AF_PACKET</c>/<c>SOCK_RAW</c> socket with protocol 0 (it receives
/// nothing) is bound to the interface index, so frames go out there as given (packet(7)). A
/// batch of up to <see cref="MaxBatch"/> frames is copied into a native buffer (slots of
/// <see cref="SlotBytes"/>; a larger frame goes alone with <c>send(2)</c> from its pinned
/// buffer), described by one <c>mmsghdr</c> and <c>iovec</c> each, and handed to the kernel in one
/// call; frames from a <see cref="FrameRing"/> are not copied, the iovecs point into its slots.
/// The socket blocks while its send buffer is full, which is the backpressure a slow
/// device gives. A frame the kernel refuses (longer than the MTU, interface down) is reported
/// to the caller and skipped; the rest of the batch is still sent. libpcap's
/// <c>pcap_sendpacket</c> does the same <c>send(2)</c>, one frame per call.
/// </remarks>
internal sealed unsafe class PacketSocketSender : IDisposable
{
    /// <summary>Frames per <c>sendmmsg</c>.</summary>
    public const int MaxBatch = 64;

    /// <summary>Bytes per batch slot; longer frames are sent one by one.</summary>
    public const int SlotBytes = 2048;

    private const int AfPacket = 17;
    private const int SockRaw = 3;
    private const int SockCloexec = 0x80000;
    private const int EIntr = 4;

    /// <summary>sizeof(struct mmsghdr) on 64-bit Linux: msghdr (56) + msg_len (4) + padding.</summary>
    private const int MmsgSize = 64;
    private const int IovecSize = 16;

    private readonly int _fd;
    private readonly byte* _slots;
    private readonly byte* _headers;
    private readonly byte* _iovecs;
    private bool _disposed;

    /// <summary>Opens a packet socket bound to <paramref name="ifName"/>; throws <see cref="IOException"/> with the reason.</summary>
    public PacketSocketSender(string ifName)
    {
        var index = if_nametoindex(ifName);
        if (index == 0)
        {
            throw new IOException($"no interface named '{ifName}'");
        }

        _fd = socket(AfPacket, SockRaw | SockCloexec, 0);
        if (_fd < 0)
        {
            throw new IOException($"cannot open a packet socket: {Marshal.GetLastPInvokeErrorMessage()} (needs root or CAP_NET_RAW)");
        }

        // struct sockaddr_ll: family, protocol (0: send only), ifindex; the rest zero.
        var address = stackalloc byte[20];
        new Span<byte>(address, 20).Clear();
        *(ushort*)address = AfPacket;
        *(int*)(address + 4) = (int)index;
        if (bind(_fd, address, 20) != 0)
        {
            var error = Marshal.GetLastPInvokeErrorMessage();
            _ = close(_fd);
            throw new IOException($"cannot bind a packet socket to '{ifName}': {error}");
        }

        _slots = (byte*)NativeMemory.AlignedAlloc(MaxBatch * SlotBytes, 64);
        _headers = (byte*)NativeMemory.AllocZeroed(MaxBatch * MmsgSize);
        _iovecs = (byte*)NativeMemory.AllocZeroed(MaxBatch * IovecSize);
        for (var i = 0; i < MaxBatch; i++)
        {
            var header = _headers + (i * MmsgSize);
            var iovec = _iovecs + (i * IovecSize);

            // msghdr: msg_name (0), msg_namelen (8), msg_iov (16), msg_iovlen (24).
            *(byte**)(header + 16) = iovec;
            *(nuint*)(header + 24) = 1;
        }
    }

    /// <summary>
    /// Sends <paramref name="frames"/> in order, blocking while the socket is full. Calls
    /// <paramref name="refused"/> with the index and the reason of each frame the kernel did not
    /// take; returns how many were sent.
    /// </summary>
    public int Send(ReadOnlySpan<Frame> frames, Action<int, string> refused)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var sent = 0;
        var at = 0;
        while (at < frames.Length)
        {
            if (frames[at].Length > SlotBytes)
            {
                if (SendOne(frames[at].Span, out var error))
                {
                    sent++;
                }
                else
                {
                    refused(at, error);
                }

                at++;
                continue;
            }

            // The run of frames that fit the slots, up to the next large one.
            var count = 0;
            while (at + count < frames.Length && count < MaxBatch && frames[at + count].Length <= SlotBytes)
            {
                var frame = frames[at + count].Span;
                var slot = _slots + (count * SlotBytes);
                frame.CopyTo(new Span<byte>(slot, SlotBytes));
                SetIovec(count, slot, frame.Length);
                count++;
            }

            sent += SendRun(at, count, refused);
            at += count;
        }

        return sent;
    }

    /// <summary>
    /// Sends the first <paramref name="count"/> frames of <paramref name="ring"/>'s batch as
    /// <see cref="Send(ReadOnlySpan{Frame}, Action{int, string})"/> does, but straight from the
    /// ring's slots: the iovecs point into them, nothing is copied.
    /// </summary>
    public int Send(FrameRing ring, int count, Action<int, string> refused)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var sent = 0;
        var at = 0;
        while (at < count)
        {
            if (ring.SlotAddress(at) is null)
            {
                if (SendOne(ring.Span(at), out var error))
                {
                    sent++;
                }
                else
                {
                    refused(at, error);
                }

                at++;
                continue;
            }

            var run = 0;
            byte* slot;
            while (at + run < count && run < MaxBatch && (slot = ring.SlotAddress(at + run)) is not null)
            {
                SetIovec(run, slot, ring.Length(at + run));
                run++;
            }

            sent += SendRun(at, run, refused);
            at += run;
        }

        return sent;
    }

    private void SetIovec(int index, byte* data, int length)
    {
        var iovec = _iovecs + (index * IovecSize);
        *(byte**)iovec = data;
        *(nuint*)(iovec + 8) = (nuint)length;
    }

    /// <summary>Hands the first <paramref name="count"/> prepared messages to the kernel, reporting refusals as frame <paramref name="first"/> + i; returns how many were sent.</summary>
    private int SendRun(int first, int count, Action<int, string> refused)
    {
        var sent = 0;
        var done = 0;
        while (done < count)
        {
            var n = sendmmsg(_fd, _headers + (done * MmsgSize), (uint)(count - done), 0);
            if (n > 0)
            {
                done += n;
                sent += n;
                continue;
            }

            if (Marshal.GetLastPInvokeError() == EIntr)
            {
                continue;
            }

            // The first frame of the rest was refused: report it, go on with the next.
            refused(first + done, Marshal.GetLastPInvokeErrorMessage());
            done++;
        }

        return sent;
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _ = close(_fd);
        NativeMemory.AlignedFree(_slots);
        NativeMemory.Free(_headers);
        NativeMemory.Free(_iovecs);
    }

    private bool SendOne(ReadOnlySpan<byte> frame, out string error)
    {
        fixed (byte* data = frame)
        {
            while (true)
            {
                if (send(_fd, data, (nuint)frame.Length, 0) >= 0)
                {
                    error = string.Empty;
                    return true;
                }

                if (Marshal.GetLastPInvokeError() != EIntr)
                {
                    error = Marshal.GetLastPInvokeErrorMessage();
                    return false;
                }
            }
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int socket(int domain, int type, int protocol);

    [DllImport("libc", SetLastError = true)]
    private static extern int bind(int fd, byte* address, int length);

    [DllImport("libc", SetLastError = true)]
    private static extern int sendmmsg(int fd, byte* messages, uint count, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern nint send(int fd, byte* data, nuint length, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern uint if_nametoindex([MarshalAs(UnmanagedType.LPStr)] string name);
}
