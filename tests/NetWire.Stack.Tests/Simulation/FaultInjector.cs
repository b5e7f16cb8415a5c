namespace NetWire.Stack.Tests.Simulation;

/// <summary>How often a <see cref="FaultInjector"/> does each thing to a frame (probabilities, 0 to 1).</summary>
internal readonly record struct FaultRates(double Drop, double Duplicate, double Reorder, double Corrupt);

/// <summary>
/// One direction of a lossy link, driven by a seeded <see cref="Random"/>: a frame may be dropped,
/// duplicated, held back and released after later frames (reordered), or get one bit flipped from
/// byte 34 on: in the TCP segment of an IPv4 frame, in the addresses or the TCP segment of an IPv6
/// one (the addresses are in the pseudo-header), so the TCP checksum always catches it. Every frame
/// that is not dropped is delivered eventually: <see cref="ReleaseHeld"/> lets the held ones go.
/// </summary>
internal sealed class FaultInjector(Random random, FaultRates rates)
{
    private readonly List<byte[]> _held = [];

    public int Dropped { get; private set; }

    public int Duplicated { get; private set; }

    public int Reordered { get; private set; }

    /// <summary>Corrupted copies handed on (each reaches the other side).</summary>
    public int Corrupted { get; private set; }

    public bool HasHeld => _held.Count > 0;

    /// <summary>Puts one frame on the link; what comes out now is appended to <paramref name="output"/>.</summary>
    public void Pass(byte[] frame, List<byte[]> output)
    {
        if (random.NextDouble() < rates.Drop)
        {
            Dropped++;
            return;
        }

        var copies = 1;
        if (random.NextDouble() < rates.Duplicate)
        {
            Duplicated++;
            copies = 2;
        }

        for (var i = 0; i < copies; i++)
        {
            var copy = frame;
            if (frame.Length > 34 && random.NextDouble() < rates.Corrupt)
            {
                copy = (byte[])frame.Clone();
                copy[random.Next(34, copy.Length)] ^= (byte)(1 << random.Next(8));
                Corrupted++;
            }

            if (random.NextDouble() < rates.Reorder)
            {
                Reordered++;
                _held.Add(copy);
                continue;
            }

            output.Add(copy);

            // Each held frame overtaken by this one goes out after it with even odds.
            for (var h = _held.Count - 1; h >= 0; h--)
            {
                if (random.Next(2) == 0)
                {
                    output.Add(_held[h]);
                    _held.RemoveAt(h);
                }
            }
        }
    }

    /// <summary>Lets every held frame go, in a random order (the link went quiet).</summary>
    public void ReleaseHeld(List<byte[]> output)
    {
        while (_held.Count > 0)
        {
            var i = random.Next(_held.Count);
            output.Add(_held[i]);
            _held.RemoveAt(i);
        }
    }
}
