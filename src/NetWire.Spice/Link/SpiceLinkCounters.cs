namespace NetWire.Spice.Link;

/// <summary>How a connection's link stage ended, beyond the SpiceLinkErr codes.</summary>
internal enum LinkOutcome
{
    Linked,
    TimedOut,
    ClientLeft,

    /// <summary>Evicted from a full link stage to make room for a newer connection.</summary>
    Evicted,
}

/// <summary>Link-stage outcome counters; lock-free, read at any time.</summary>
internal sealed class SpiceLinkCounters
{
    private readonly long[] _errors = new long[16];
    private readonly long[] _outcomes = new long[5];

    public void Count(SpiceLinkErr error) => Interlocked.Increment(ref _errors[(int)error & 15]);

    public void Count(LinkOutcome outcome) => Interlocked.Increment(ref _outcomes[(int)outcome]);

    /// <summary>Links refused with <paramref name="error"/>.</summary>
    public long Refused(SpiceLinkErr error) => Interlocked.Read(ref _errors[(int)error & 15]);

    /// <summary>Links refused with any error.</summary>
    public long TotalRefused
    {
        get
        {
            long total = 0;
            for (var i = 1; i < _errors.Length; i++)
            {
                total += Interlocked.Read(ref _errors[i]);
            }

            return total;
        }
    }

    /// <summary>Connections that ended the link stage with <paramref name="outcome"/>.</summary>
    public long Of(LinkOutcome outcome) => Interlocked.Read(ref _outcomes[(int)outcome]);
}
