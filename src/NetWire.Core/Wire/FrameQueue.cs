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
/// objects, so a steady stream of frames allocates nothing here.
/// </remarks>
public sealed class FrameQueue
{
    private readonly Channel<Frame> _channel;

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

    /// <summary>True while a write would be accepted.</summary>
    public bool CanWrite => _channel.Reader.Count < Capacity && !_channel.Reader.Completion.IsCompleted;

    /// <summary>Queues a frame; false (the caller keeps ownership) when full or completed.</summary>
    public bool TryWrite(Frame frame) => _channel.Writer.TryWrite(frame);

    /// <summary>Completes when there is room, or when the queue was completed.</summary>
    public ValueTask WaitWritableAsync(CancellationToken cancellationToken)
    {
        var wait = _channel.Writer.WaitToWriteAsync(cancellationToken);
        return wait.IsCompletedSuccessfully ? default : AwaitAsync(wait);

        static async ValueTask AwaitAsync(ValueTask<bool> wait) => await wait.ConfigureAwait(false);
    }

    /// <summary>Takes the next frame if one is queued.</summary>
    public bool TryRead(out Frame frame) => _channel.Reader.TryRead(out frame!);

    /// <summary>Waits until a frame is queued; false once the queue is completed and empty.</summary>
    public ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken) => _channel.Reader.WaitToReadAsync(cancellationToken);

    /// <summary>Refuses further writes and returns every queued frame to its pool, counting them.</summary>
    /// <returns>How many frames were discarded.</returns>
    public int CompleteAndDrain()
    {
        _channel.Writer.TryComplete();
        var discarded = 0;
        while (_channel.Reader.TryRead(out var frame))
        {
            frame.Dispose();
            discarded++;
        }

        return discarded;
    }
}
