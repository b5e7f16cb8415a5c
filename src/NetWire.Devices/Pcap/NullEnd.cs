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

    /// <summary>
    /// When set, the end takes its frames from this ring on a dedicated thread instead of from
    /// <see cref="WireEnd.SendPacket"/>; the ring's producer is the replay (docs/performance.md, "Replay").
    /// </summary>
    public FrameRing? Ring { get; init; }

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        if (Ring is { } ring)
        {
            await DeviceThread.Run("null-ring", () => DrainRing(ring, cancellationToken)).ConfigureAwait(false);
            return;
        }

        while (await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            Drain();
        }
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        if (Ring?.Discard() is > 0 and var discarded)
        {
            Counters.Dropped(DropReason.Shutdown, discarded);
        }

        return default;
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void DrainRing(FrameRing ring, CancellationToken cancellationToken)
    {
        while (true)
        {
            var count = ring.WaitReadable(int.MaxValue, cancellationToken);
            if (count == 0)
            {
                // The replay is over and every frame taken; an end still runs until it is stopped.
                cancellationToken.WaitHandle.WaitOne();
                return;
            }

            long bytes = 0;
            for (var i = 0; i < count; i++)
            {
                bytes += ring.Length(i);
            }

            ring.Release(count);
            Counters.Transmitted(count, bytes);
        }
    }
}
