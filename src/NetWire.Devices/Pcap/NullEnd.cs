using System.Runtime.CompilerServices;
using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Devices.Pcap;

/// <summary>
/// An end with no device: every frame sent to it is counted as transmitted and returned to the
/// pool at once. <c>netwire replay --into null</c> uses it to measure the replay itself.
/// </summary>
public sealed class NullEnd(string name, FramePool pool, int queueCapacity) : WireEnd(name, pool, queueCapacity)
{
    /// <inheritdoc/>
    public override string Description => "null (frames are counted and discarded)";

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        while (await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            Drain();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Drain()
    {
        while (Outbound.TryRead(out var frame))
        {
            Counters.Transmitted(frame.Length);
            frame.Dispose();
        }
    }
}
