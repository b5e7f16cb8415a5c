using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Core.Taps;

/// <summary>
/// A receiver decorator that records every frame it passes on. It sits between a wire end and
/// the link, so backends know nothing of captures.
/// </summary>
public sealed class CaptureTap(IPacketReceiver inner, ICaptureSink sink, int interfaceId, CaptureDirection direction, TimeProvider? time = null)
    : IPacketReceiver
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <inheritdoc/>
    public bool CanRecvPacket => inner.CanRecvPacket;

    /// <inheritdoc/>
    public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => inner.WaitCanRecvPacketAsync(cancellationToken);

    /// <inheritdoc/>
    public WireOffloads AcceptedOffloads => inner.AcceptedOffloads;

    /// <inheritdoc/>
    public bool TryArmRoomSignal(ThreadSignal signal) => inner.TryArmRoomSignal(signal);

    /// <inheritdoc/>
    public bool HasRoomSignal => inner.HasRoomSignal;

    /// <inheritdoc/>
    public void RecvPacket(Frame frame)
    {
        sink.Write(interfaceId, frame.Span, direction, _time.GetUtcNow());
        inner.RecvPacket(frame);
    }
}
