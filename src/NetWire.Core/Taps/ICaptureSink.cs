namespace NetWire.Core.Taps;

/// <summary>Direction of a captured frame, seen from NetWire (pcapng epb_flags bits 0-1).</summary>
public enum CaptureDirection
{
    /// <summary>Not known.</summary>
    Unknown = 0,

    /// <summary>From the guest into the wire.</summary>
    Inbound = 1,

    /// <summary>From the wire to the guest.</summary>
    Outbound = 2,
}

/// <summary>Somewhere captured frames go (a pcapng file, a FIFO, stdout).</summary>
public interface ICaptureSink
{
    /// <summary>Declares a capture interface and returns its id.</summary>
    int AddInterface(string name, string description);

    /// <summary>Records one frame. Must not keep a reference to <paramref name="frame"/>.</summary>
    void Write(int interfaceId, ReadOnlySpan<byte> frame, CaptureDirection direction, DateTimeOffset timestamp);

    /// <summary>Frames recorded so far.</summary>
    long FramesWritten { get; }

    /// <summary>Frames not recorded: the output was too slow (buffer full) or went away.</summary>
    long FramesDropped => 0;
}
