namespace NetWire.Core.Wire;

/// <summary>
/// A wire end's own send buffer, which a source on a dedicated thread may read frames straight
/// into and send from, instead of renting a frame per read and handing it through the end's queue
/// to the end's device thread. A TAP's reader uses it towards a stream guest: a burst of reads,
/// then one send(2) on the reader's thread (docs/performance.md, "netwire bridge").
/// </summary>
/// <remarks>
/// <para>
/// A burst is <see cref="TryBeginBurst"/>, then for each frame <see cref="NextFrame"/> (where to
/// read it) and <see cref="CommitFrame"/> (its length), then <see cref="EndBurst"/>, always, also
/// when the source fails in between. Between the two the caller alone uses the buffer.
/// </para>
/// <para>
/// A burst begins only while nothing is queued or waiting to be sent before it (the end's queue is
/// empty and its device thread holds no frames), so frames keep their order whichever way they go.
/// A committed frame belongs to the end: <see cref="EndBurst"/> sends what the device takes at once
/// without blocking and leaves the rest, in order and before anything queued later, to the end's
/// device thread, or counts the frames as a drop with a reason when the device went away. While
/// that rest is unsent no burst begins, so the source falls back to the queue, and a full queue
/// stops it reading (backpressure).
/// </para>
/// </remarks>
public interface IBurstSink
{
    /// <summary>
    /// True when a burst may begin now: the device is there, nothing is queued or unsent before it,
    /// and no other thread is sending. False means: hand frames on through the receiver as usual.
    /// </summary>
    bool TryBeginBurst();

    /// <summary>
    /// Where to put the next frame of the burst, <paramref name="maxLength"/> bytes long (a read
    /// may fill it whole); empty when the buffer has no such room left (end the burst).
    /// </summary>
    Span<byte> NextFrame(int maxLength);

    /// <summary>The frame at the last <see cref="NextFrame"/> is <paramref name="length"/> bytes long and belongs to the end.</summary>
    void CommitFrame(int length);

    /// <summary>Sends the burst's frames (see the remarks for what the device does not take at once) and releases the buffer.</summary>
    void EndBurst();
}
