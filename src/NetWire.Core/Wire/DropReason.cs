namespace NetWire.Core.Wire;

/// <summary>Why a frame was not delivered. Every drop is counted under one of these.</summary>
public enum DropReason
{
    /// <summary>A length prefix of 0, under 14 or over 69,632 bytes: the connection is closed.</summary>
    BadLength,

    /// <summary>A connection ended in the middle of a frame.</summary>
    Truncated,

    /// <summary>The receiving end was full and the source (datagram socket, live capture) cannot be paused.</summary>
    PeerFull,

    /// <summary>SendPacket was called while CanSendPacket was false (a caller bug; never expected).</summary>
    Overrun,

    /// <summary>Frames the kernel dropped before NetWire could read them (TAP queue, capture buffer).</summary>
    Kernel,

    /// <summary>Frames still queued when the appliance shut down.</summary>
    Shutdown,

    /// <summary>The device refused the frame (a send error such as EMSGSIZE).</summary>
    SendFailed,

    /// <summary>A datagram from an address other than the configured peer.</summary>
    ForeignSource,
}
