namespace NetWire.Core.Wire;

/// <summary>
/// Frame and byte counters of one wire end. Receive counters are written by the end's receive
/// loop, transmit counters by its send loop, drops from anywhere; all with Interlocked so that
/// readers (metrics, status, summaries) see whole values.
/// </summary>
public sealed class WireCounters
{
    private static readonly int s_reasonCount = Enum.GetValues<DropReason>().Length;

    private readonly long[] _drops = new long[s_reasonCount];
    private long _rxFrames;
    private long _rxBytes;
    private long _txFrames;
    private long _txBytes;
    private long _connections;
    private long _kernelDropsBaseline = -1;
    private long _kernelDropsCarried;

    /// <summary>Frames received from the device (towards the wire).</summary>
    public long RxFrames => Interlocked.Read(ref _rxFrames);

    /// <summary>Bytes received from the device.</summary>
    public long RxBytes => Interlocked.Read(ref _rxBytes);

    /// <summary>Frames written to the device.</summary>
    public long TxFrames => Interlocked.Read(ref _txFrames);

    /// <summary>Bytes written to the device.</summary>
    public long TxBytes => Interlocked.Read(ref _txBytes);

    /// <summary>Connections accepted or made (stream ends).</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>All drops, every reason.</summary>
    public long TotalDrops
    {
        get
        {
            long sum = 0;
            for (var i = 0; i < _drops.Length; i++)
            {
                sum += Interlocked.Read(ref _drops[i]);
            }

            return sum;
        }
    }

    /// <summary>Drops for one reason.</summary>
    public long Drops(DropReason reason) => Interlocked.Read(ref _drops[(int)reason]);

    /// <summary>Counts one received frame.</summary>
    public void Received(int bytes)
    {
        Interlocked.Increment(ref _rxFrames);
        Interlocked.Add(ref _rxBytes, bytes);
    }

    /// <summary>Counts a batch of received frames.</summary>
    public void Received(int frames, long bytes)
    {
        Interlocked.Add(ref _rxFrames, frames);
        Interlocked.Add(ref _rxBytes, bytes);
    }

    /// <summary>Counts one transmitted frame.</summary>
    public void Transmitted(int bytes)
    {
        Interlocked.Increment(ref _txFrames);
        Interlocked.Add(ref _txBytes, bytes);
    }

    /// <summary>Counts a batch of transmitted frames.</summary>
    public void Transmitted(int frames, long bytes)
    {
        Interlocked.Add(ref _txFrames, frames);
        Interlocked.Add(ref _txBytes, bytes);
    }

    /// <summary>Counts a dropped frame.</summary>
    public void Dropped(DropReason reason, long count = 1) => Interlocked.Add(ref _drops[(int)reason], count);

    /// <summary>Counts a new connection.</summary>
    public void Connected() => Interlocked.Increment(ref _connections);

    /// <summary>
    /// Adds totals counted elsewhere (the source appliance of a migration), so this end's
    /// counters continue them instead of starting from zero.
    /// </summary>
    public void Continue(long rxFrames, long rxBytes, long txFrames, long txBytes, long connections, ReadOnlySpan<long> drops)
    {
        Interlocked.Add(ref _rxFrames, rxFrames);
        Interlocked.Add(ref _rxBytes, rxBytes);
        Interlocked.Add(ref _txFrames, txFrames);
        Interlocked.Add(ref _txBytes, txBytes);
        Interlocked.Add(ref _connections, connections);
        for (var i = 0; i < Math.Min(drops.Length, _drops.Length); i++)
        {
            Interlocked.Add(ref _drops[i], drops[i]);
            if (i == (int)DropReason.Kernel)
            {
                Interlocked.Add(ref _kernelDropsCarried, drops[i]);
            }
        }
    }

    /// <summary>
    /// Records a kernel-side drop counter (such as a TAP's tx_dropped) as an absolute reading;
    /// the first reading is the baseline, later ones add what grew since.
    /// </summary>
    public void ObserveKernelDrops(long absolute)
    {
        var baseline = Interlocked.CompareExchange(ref _kernelDropsBaseline, absolute, -1);
        if (baseline < 0)
        {
            return;
        }

        Interlocked.Exchange(ref _drops[(int)DropReason.Kernel], Math.Max(0, absolute - baseline) + Interlocked.Read(ref _kernelDropsCarried));
    }
}
