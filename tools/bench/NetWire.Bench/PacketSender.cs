using System.Runtime.InteropServices;

namespace NetWire.Bench;

/// <summary>
/// Makes the kernel hand frames to a TAP's file descriptor as fast as it can: an AF_PACKET
/// socket bound to the TAP sends batches with sendmmsg(2), bypassing the qdisc, so every frame
/// goes straight to the TAP's transmit routine (which queues it for whoever reads the fd).
/// </summary>
/// <remarks>
/// One syscall carries <see cref="BatchSize"/> frames; the kernel still builds one skb per frame,
/// which is the sender's cost. All messages point at the same frame bytes.
/// </remarks>
internal sealed unsafe class PacketSender : IDisposable
{
    /// <summary>Frames per sendmmsg call.</summary>
    public const int BatchSize = 256;

    private readonly int _fd;
    private readonly byte* _frame;
    private readonly Native.IoVec* _iov;
    private readonly Native.MMsgHdr* _messages;

    /// <summary>Frames the kernel accepted; written by the sending thread only.</summary>
    private long _sent;

    /// <summary>
    /// Opens a sender on interface <paramref name="ifName"/> for <paramref name="frame"/>.
    /// <paramref name="bypassQdisc"/> hands frames straight to the driver; without it they pass
    /// the interface's qdisc first, which costs more but makes a full TAP queue a silent drop
    /// instead of ENOBUFS (used to measure the sender alone).
    /// </summary>
    public PacketSender(string ifName, byte[] frame, bool bypassQdisc = true)
    {
        var index = Native.IfNameToIndex(ifName);
        if (index == 0)
        {
            throw Native.Failure($"no interface {ifName}");
        }

        // Protocol 0: a send-only socket, so it is not handed copies of other traffic.
        _fd = Native.Socket(Native.AfPacket, Native.SockRaw, 0);
        if (_fd < 0)
        {
            throw Native.Failure("socket(AF_PACKET)");
        }

        var address = default(Native.SockAddrLl);
        address.Family = Native.AfPacket;
        address.IfIndex = (int)index;
        if (Native.Bind(_fd, &address, (uint)sizeof(Native.SockAddrLl)) < 0)
        {
            var error = Native.Failure($"bind AF_PACKET to {ifName}");
            Native.Close(_fd);
            throw error;
        }

        var one = 1;
        if (bypassQdisc && Native.SetSockOpt(_fd, Native.SolPacket, Native.PacketQdiscBypass, &one, sizeof(int)) < 0)
        {
            var error = Native.Failure("PACKET_QDISC_BYPASS");
            Native.Close(_fd);
            throw error;
        }

        _frame = (byte*)NativeMemory.Alloc((nuint)frame.Length);
        frame.CopyTo(new Span<byte>(_frame, frame.Length));
        _iov = (Native.IoVec*)NativeMemory.AllocZeroed((nuint)sizeof(Native.IoVec));
        _iov->Base = _frame;
        _iov->Length = (nuint)frame.Length;
        _messages = (Native.MMsgHdr*)NativeMemory.AllocZeroed((nuint)(sizeof(Native.MMsgHdr) * BatchSize));
        for (var i = 0; i < BatchSize; i++)
        {
            _messages[i].Iov = _iov;
            _messages[i].IovLength = 1;
        }
    }

    /// <summary>Frames the kernel accepted so far.</summary>
    public long Sent => Volatile.Read(ref _sent);

    /// <summary>
    /// Sends until <paramref name="stop"/> is set. With a <paramref name="window"/>, waits whenever
    /// the consumer is that many frames behind; <paramref name="lost"/> reads the kernel drops
    /// since the start (frames the consumer will never see).
    /// </summary>
    public void Run(StopFlag stop, FlowWindow? window, Func<long> lost)
    {
        while (!stop.IsSet)
        {
            window?.WaitForRoom(_sent, BatchSize, lost);
            var n = Native.SendMMsg(_fd, _messages, BatchSize, 0);
            if (n < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is Native.EIntr or Native.EAgain or Native.ENoBufs)
                {
                    continue;
                }

                throw new IOException($"sendmmsg: {Native.Describe(errno)}");
            }

            Volatile.Write(ref _sent, _sent + n);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Native.Close(_fd);
        NativeMemory.Free(_messages);
        NativeMemory.Free(_iov);
        NativeMemory.Free(_frame);
    }
}
