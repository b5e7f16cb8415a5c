namespace NetWire.Devices.Pcap;

/// <summary>How replayed frames are paced.</summary>
public enum ReplayPacing
{
    /// <summary>Honour the capture's timestamps (optionally scaled by <see cref="ReplayOptions.Multiplier"/>).</summary>
    Original,

    /// <summary>A fixed number of frames per second.</summary>
    FramesPerSecond,

    /// <summary>A fixed number of megabits (10^6) per second of frame bytes.</summary>
    Megabits,

    /// <summary>As fast as the target takes frames.</summary>
    TopSpeed,
}

/// <summary>What <see cref="CaptureReplayer"/> does with a capture file.</summary>
public sealed record ReplayOptions
{
    /// <summary>The pacing mode.</summary>
    public ReplayPacing Pacing { get; init; } = ReplayPacing.Original;

    /// <summary>Original pacing: time runs this many times faster than in the capture.</summary>
    public double Multiplier { get; init; } = 1;

    /// <summary>The rate for <see cref="ReplayPacing.FramesPerSecond"/> or <see cref="ReplayPacing.Megabits"/>.</summary>
    public double Rate { get; init; }

    /// <summary>How many times the file is played.</summary>
    public int Loops { get; init; } = 1;

    /// <summary>Stop after this many frames in total; 0 for no limit.</summary>
    public long Limit { get; init; }
}
