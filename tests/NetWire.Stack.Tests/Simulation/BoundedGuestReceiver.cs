using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Stack.Tests.Simulation;

/// <summary>
/// The guest end as the gateway sees it in the simulation: it holds at most
/// <paramref name="capacity"/> frames until the simulation drains them, so
/// <see cref="CanRecvPacket"/> goes false and the gateway must wait (net_wire CanSendPacket).
/// A frame delivered while full is counted in <see cref="Overruns"/>.
/// </summary>
internal sealed class BoundedGuestReceiver(int capacity) : IPacketReceiver
{
    private readonly Lock _sync = new();
    private readonly Queue<byte[]> _frames = new();
    private TaskCompletionSource _room = NewSignal();
    private TaskCompletionSource _arrived = NewSignal();

    public int Overruns { get; private set; }

    public bool CanRecvPacket
    {
        get
        {
            lock (_sync)
            {
                return _frames.Count < capacity;
            }
        }
    }

    public async ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task room;
            lock (_sync)
            {
                if (_frames.Count < capacity)
                {
                    return;
                }

                room = _room.Task;
            }

            await room.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public void RecvPacket(Frame frame)
    {
        var bytes = frame.Span.ToArray();
        frame.Dispose();
        TaskCompletionSource arrived;
        lock (_sync)
        {
            if (_frames.Count >= capacity)
            {
                Overruns++;
            }

            _frames.Enqueue(bytes);
            arrived = _arrived;
        }

        arrived.TrySetResult();
    }

    /// <summary>Takes every frame waiting and makes room.</summary>
    public void DrainTo(List<byte[]> output)
    {
        TaskCompletionSource room;
        lock (_sync)
        {
            output.AddRange(_frames);
            _frames.Clear();
            room = _room;
            _room = NewSignal();
        }

        room.TrySetResult();
    }

    /// <summary>Completes when a frame is waiting.</summary>
    public Task WhenFrameAsync()
    {
        lock (_sync)
        {
            if (_frames.Count > 0)
            {
                return Task.CompletedTask;
            }

            if (_arrived.Task.IsCompleted)
            {
                _arrived = NewSignal();
            }

            return _arrived.Task;
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
