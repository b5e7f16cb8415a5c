using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Qemu;

/// <summary>The send side: the connection's send thread, and bursts a source sends itself.</summary>
/// <remarks>
/// Two ways lead into the guest socket, through one buffer under one lock (<see cref="SendBuffer"/>):
/// <code>
///  TAP reader ──read(2) x N──▶ buffer ──send(2)──▶ guest        while nothing is queued or unsent
///      │                        ▲  (EAGAIN: the rest stays in the buffer for the send thread)
///      └─▶ queue ──▶ send thread┘ ──send(2)──▶ guest              otherwise: unsent rest first, then the queue
/// </code>
/// The send thread holds the lock while it packs and sends (also while it waits for a full socket),
/// a burst source while it reads its burst and sends it; a source never waits for the lock, it uses
/// the queue instead. So frames reach the socket in the order they were read, and a guest that stops
/// reading fills the queue, which stops the source (backpressure): at most the queue, one unsent
/// burst and the source's held frames are in NetWire.
/// </remarks>
public sealed partial class QemuStreamEnd
{
    /// <inheritdoc/>
    public override IBurstSink? BurstSink => _send;

    /// <summary>Frames sent by a burst source on its own thread (not through the queue). For tests.</summary>
    internal long DirectFrames => Volatile.Read(ref _send.DirectFrames);

    /// <summary>Bursts whose rest the send thread sent because the socket was full. For tests.</summary>
    internal long DeferredBursts => Volatile.Read(ref _send.DeferredBursts);

    /// <summary>
    /// The send side of one connection, on a thread of its own: sends what a burst left unsent, then
    /// packs queued frames into one buffer (up to <see cref="BufferLength"/>) and writes them with
    /// send(2), sleeping on the queue's direct signal while there is nothing to send: no thread-pool
    /// hand-off per burst and nothing allocated per wait (an asynchronous wait with the connection's
    /// token allocated a waiter each time; docs/performance.md, "netwire bridge").
    /// Ends with the connection's token (throws <see cref="OperationCanceledException"/>, as the
    /// loops on the thread pool did), when the queue is completed, or when the guest goes away.
    /// </summary>
    private unsafe (EndReason Reason, string Detail) SendLoop(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(BufferLength, pinned: true);
        var wake = EventFdSignal.Create();
        var handle = socket.SafeHandle;
        var added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            using var stop = cancellationToken.UnsafeRegister(static state => ((ThreadSignal)state!).Set(), wake);
            Outbound.SetReaderSignal(wake.Set);
            _send.Open(buffer, (int)handle.DangerousGetHandle(), wake);
            try
            {
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var step = _send.SendNext(cancellationToken, out var end);
                    if (step == SendStep.Ended)
                    {
                        return end;
                    }

                    if (step == SendStep.Sent)
                    {
                        continue;
                    }

                    if (Outbound.IsCompleted)
                    {
                        return (EndReason.Stopping, "queue completed");
                    }

                    // Nothing queued or unsent: a queued frame or a burst that left a rest sets the signal.
                    if (Outbound.TryParkReader())
                    {
                        wake.Wait(PollTimeoutMs);
                        Outbound.UnparkReader();
                    }
                }
            }
            finally
            {
                _send.Close();
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }

            // The queue keeps the signal for the next connection's thread to replace; a set after
            // this does nothing.
            EventFdSignal.Release(wake);
        }
    }

    /// <summary>
    /// Writes <paramref name="length"/> bytes to the socket, waiting in poll(2) while its buffer is
    /// full; 0 when all went, the errno when the socket failed, -1 when cancelled meanwhile.
    /// </summary>
    private static unsafe int SendAll(int fd, byte* data, int length, CancellationToken cancellationToken)
    {
        var sent = 0;
        while (sent < length)
        {
            var n = Libc.Send(fd, data + sent, length - sent, Libc.MsgDontWait | Libc.MsgNoSignal);
            if (n > 0)
            {
                sent += (int)n;
                continue;
            }

            var errno = n < 0 ? Marshal.GetLastPInvokeError() : Libc.EPipe;
            if (errno == Libc.EIntr)
            {
                continue;
            }

            if (errno != Libc.EAgain)
            {
                return errno;
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return -1;
            }

            var pollFd = new Libc.PollFd { Fd = fd, Events = Libc.PollOut };
            Libc.Poll(&pollFd, 1, PollTimeoutMs);
        }

        return 0;
    }

    /// <summary>What one step of the send thread did.</summary>
    private enum SendStep
    {
        /// <summary>Nothing was queued or unsent.</summary>
        Idle,

        /// <summary>Frames were sent.</summary>
        Sent,

        /// <summary>The guest went away; the connection ends.</summary>
        Ended,
    }

    /// <summary>
    /// The guest socket's send buffer, shared by the connection's send thread and a burst source (the
    /// TAP's reader in <c>netwire bridge</c>, <see cref="IBurstSink"/>), one per end. Whoever holds
    /// <see cref="_lock"/> writes the buffer and the socket; the send thread waits for it, a burst
    /// source only tries it. No burst begins while frames are queued or a rest is unsent, so the
    /// socket gets frames in the order the source read them.
    /// </summary>
    private sealed unsafe class SendBuffer(WireCounters counters, FrameQueue outbound) : IBurstSink
    {
        private readonly Lock _lock = new();

        /// <summary>The connection's pinned buffer; null while no connection is served. Guarded by <see cref="_lock"/>; set by the send thread.</summary>
        private byte[]? _buffer;

        /// <summary>The connection's socket fd, valid while <see cref="_buffer"/> is set (the send thread holds a reference). Guarded by <see cref="_lock"/>.</summary>
        private int _fd = -1;

        /// <summary>Wakes the send thread (the queue's reader signal). Guarded by <see cref="_lock"/>.</summary>
        private ThreadSignal? _wake;

        /// <summary>Bytes, frames and frame bytes of the burst being written, from the buffer's start. Guarded by <see cref="_lock"/>; burst source only.</summary>
        private int _used;

        /// <inheritdoc cref="_used"/>
        private int _frames;

        /// <inheritdoc cref="_used"/>
        private long _bytes;

        /// <summary>
        /// The unsent rest of a burst the socket did not take whole, bytes [<see cref="_restStart"/>,
        /// <see cref="_restEnd"/>) of the buffer, with the burst's frames and frame bytes (counted as
        /// sent once the rest is); <see cref="_restEnd"/> is 0 when there is none. Written by a burst
        /// source, taken by the send thread, under <see cref="_lock"/>.
        /// </summary>
        private int _restStart;

        /// <inheritdoc cref="_restStart"/>
        private int _restEnd;

        /// <inheritdoc cref="_restStart"/>
        private int _restFrames;

        /// <inheritdoc cref="_restStart"/>
        private long _restBytes;

        /// <summary>The errno of a burst's failed send (its frames were counted as send_failed): the send thread ends the connection. Guarded by <see cref="_lock"/>.</summary>
        private int _failedErrno;

        /// <summary>Frames sent in bursts; written under <see cref="_lock"/>. For tests.</summary>
        public long DirectFrames;

        /// <summary>Bursts whose rest went to the send thread; written under <see cref="_lock"/>. For tests.</summary>
        public long DeferredBursts;

        /// <summary>The send thread starts serving a connection.</summary>
        public void Open(byte[] buffer, int fd, ThreadSignal wake)
        {
            using (_lock.EnterScope())
            {
                _buffer = buffer;
                _fd = fd;
                _wake = wake;
                _failedErrno = 0;
            }
        }

        /// <summary>
        /// The send thread stops (the connection ends): no burst begins from here on. A rest it did
        /// not get to (it stopped meanwhile) is counted as a shutdown drop.
        /// </summary>
        public void Close()
        {
            using (_lock.EnterScope())
            {
                if (_restEnd > 0)
                {
                    counters.Dropped(DropReason.Shutdown, _restFrames);
                    ClearRest();
                }

                _buffer = null;
                _fd = -1;
                _wake = null;
            }
        }

        /// <summary>
        /// On the send thread: sends a burst's unsent rest, or else what is queued. Ended (with
        /// <paramref name="end"/>) when the guest went away. Throws OperationCanceledException when
        /// cancelled with frames in hand (counted as shutdown drops).
        /// </summary>
        public SendStep SendNext(CancellationToken cancellationToken, out (EndReason Reason, string Detail) end)
        {
            end = default;
            using (_lock.EnterScope())
            {
                var buffer = _buffer!;
                if (_failedErrno != 0)
                {
                    end = (EndReason.ConnectionLost, Libc.Describe(_failedErrno));
                    return SendStep.Ended;
                }

                int from;
                int to;
                int frames;
                long bytes;
                if (_restEnd > 0)
                {
                    (from, to, frames, bytes) = (_restStart, _restEnd, _restFrames, _restBytes);
                    ClearRest();
                }
                else
                {
                    from = 0;
                    to = 0;
                    frames = 0;
                    bytes = 0;
                    while (to <= buffer.Length - (HeaderLength + FramePool.MaxFrameLength) && outbound.TryRead(out var frame))
                    {
                        BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(to), (uint)frame.Length);
                        frame.Span.CopyTo(buffer.AsSpan(to + HeaderLength));
                        to += HeaderLength + frame.Length;
                        frames++;
                        bytes += frame.Length;
                        frame.Dispose();
                    }

                    if (frames == 0)
                    {
                        return SendStep.Idle;
                    }
                }

                int errno;
                fixed (byte* data = buffer)
                {
                    errno = SendAll(_fd, data + from, to - from, cancellationToken);
                }

                if (errno == -1 || (errno != 0 && cancellationToken.IsCancellationRequested))
                {
                    // Shutting down (or the guest's receive side ended) with these frames in hand.
                    counters.Dropped(DropReason.Shutdown, frames);
                    cancellationToken.ThrowIfCancellationRequested();
                }

                if (errno != 0)
                {
                    // The guest went away with these frames taken from the queue: count them.
                    counters.Dropped(DropReason.SendFailed, frames);
                    end = (EndReason.ConnectionLost, Libc.Describe(errno));
                    return SendStep.Ended;
                }

                counters.Transmitted(frames, bytes);
                return SendStep.Sent;
            }
        }

        /// <inheritdoc/>
        public bool TryBeginBurst()
        {
            if (!_lock.TryEnter())
            {
                // The send thread is sending (or waiting for a full socket): frames go through the queue.
                return false;
            }

            if (_buffer is null || _restEnd > 0 || _failedErrno != 0 || outbound.Count > 0)
            {
                _lock.Exit();
                return false;
            }

            return true;
        }

        /// <inheritdoc/>
        public Span<byte> NextFrame(int maxLength)
        {
            var at = _used + HeaderLength;
            return _buffer!.Length - at >= maxLength ? _buffer.AsSpan(at, maxLength) : default;
        }

        /// <inheritdoc/>
        public void CommitFrame(int length)
        {
            Debug.Assert(length is >= FramePool.MinFrameLength and <= FramePool.MaxFrameLength, "a frame QEMU's stream framing takes");
            BinaryPrimitives.WriteUInt32BigEndian(_buffer.AsSpan(_used), (uint)length);
            _used += HeaderLength + length;
            _frames++;
            _bytes += length;
        }

        /// <inheritdoc/>
        public void EndBurst()
        {
            ThreadSignal? wake = null;
            try
            {
                if (_frames == 0)
                {
                    return;
                }

                DirectFrames += _frames;
                var sent = 0;
                var errno = 0;
                fixed (byte* data = _buffer)
                {
                    while (sent < _used)
                    {
                        var n = Libc.Send(_fd, data + sent, _used - sent, Libc.MsgDontWait | Libc.MsgNoSignal);
                        if (n > 0)
                        {
                            sent += (int)n;
                            continue;
                        }

                        errno = n < 0 ? Marshal.GetLastPInvokeError() : Libc.EPipe;
                        if (errno != Libc.EIntr)
                        {
                            break;
                        }
                    }
                }

                if (sent == _used)
                {
                    counters.Transmitted(_frames, _bytes);
                }
                else if (errno == Libc.EAgain)
                {
                    // The guest's socket is full: the send thread sends the rest, waiting for room,
                    // before anything queued; meanwhile no burst begins, so the source queues.
                    (_restStart, _restEnd, _restFrames, _restBytes) = (sent, _used, _frames, _bytes);
                    DeferredBursts++;
                    wake = _wake;
                }
                else
                {
                    // The guest went away with the burst: counted, and the send thread ends the connection.
                    counters.Dropped(DropReason.SendFailed, _frames);
                    _failedErrno = errno;
                    wake = _wake;
                }
            }
            finally
            {
                _used = 0;
                _frames = 0;
                _bytes = 0;
                _lock.Exit();
                wake?.Set();
            }
        }

        private void ClearRest() => (_restStart, _restEnd, _restFrames, _restBytes) = (0, 0, 0, 0);
    }
}
