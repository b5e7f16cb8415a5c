namespace NetWire.Spice.Link;

/// <summary>How a connection's link stage ended, beyond the SpiceLinkErr codes.</summary>
internal enum LinkOutcome
{
    Linked,
    TimedOut,
    ClientLeft,

    /// <summary>Evicted from a full link stage to make room for a newer connection.</summary>
    Evicted,

    /// <summary>Plaintext on the TLS port: refused before the handshake.</summary>
    TlsPlaintext,

    /// <summary>The TLS handshake failed (no common version or suite, or the client refused the certificate).</summary>
    TlsFailed,

    /// <summary>A TLS handshake on the plaintext port (answered INVALID_MAGIC, as spice-server does).</summary>
    TlsOnPlainPort,
}

/// <summary>Link-stage outcome counters; lock-free, read at any time.</summary>
internal sealed class SpiceLinkCounters
{
    private readonly long[] _errors = new long[16];
    private readonly long[] _outcomes = new long[Enum.GetValues<LinkOutcome>().Length];

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
