namespace NetWire.Core.Net;

/// <summary>
/// Why a connection, channel or session ended. Logged by name, beside a detail (the exception's
/// message, a socket error, a frame length) when there is one.
/// </summary>
public enum EndReason
{
    /// <summary>The peer closed the connection: end of stream.</summary>
    PeerClosed,

    /// <summary>The peer said it was leaving (SPICE DISCONNECTING).</summary>
    PeerLeft,

    /// <summary>The connection failed: reset, aborted, broken pipe, or another socket error.</summary>
    ConnectionLost,

    /// <summary>The peer broke the protocol: a message or frame that cannot be accepted.</summary>
    ProtocolError,

    /// <summary>The peer refused us: a link result other than OK.</summary>
    Refused,

    /// <summary>A deadline passed.</summary>
    TimedOut,

    /// <summary>We ended it: DISCONNECTING sent, a migrating client refused, a reader too slow for its events.</summary>
    Disconnected,

    /// <summary>We are stopping: the server, the wire end or the caller cancelled.</summary>
    Stopping,

    /// <summary>An unexpected failure; its exception says what.</summary>
    Failed,
}
