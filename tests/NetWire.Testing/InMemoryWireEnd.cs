using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Testing;

/// <summary>
/// A wire end whose device is the test: <see cref="Inject"/> plays the device producing frames
/// (honouring the receiver's backpressure), <see cref="Deliver"/> drains what was sent to it.
/// </summary>
public sealed class InMemoryWireEnd(string name, int capacity, NetWireInterface? version = null, FramePool? pool = null)
    : WireEnd(name, pool ?? FramePool.Shared, capacity)
{
    private readonly TaskCompletionSource<IPacketReceiver> _receiver = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override NetWireInterface Interface => version ?? base.Interface;

    public override string Description => $"memory {Name}";

    public int Queued => QueuedFrames;

    public Task<IPacketReceiver> Receiver => _receiver.Task;

    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        _receiver.TrySetResult(receiver);
        await Task.Delay(Timeout.Infinite, cancellationToken);
    }

    /// <summary>Sends one frame into the wire as the device would, waiting while the receiver is full.</summary>
    public async Task Inject(byte[] bytes, CancellationToken cancellationToken = default)
    {
        var receiver = await Receiver;
        if (!receiver.CanRecvPacket)
        {
            await receiver.WaitCanRecvPacketAsync(cancellationToken);
        }

        Counters.Received(bytes.Length);
        receiver.RecvPacket(Pool.Rent(bytes));
    }

    /// <summary>Takes every queued frame as the device would, returning copies.</summary>
    public List<byte[]> Deliver()
    {
        var list = new List<byte[]>();
        while (Outbound.TryRead(out var frame))
        {
            list.Add(frame.Span.ToArray());
            Counters.Transmitted(frame.Length);
            frame.Dispose();
        }

        return list;
    }
}
