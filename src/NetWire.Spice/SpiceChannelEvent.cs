using System.Net;

namespace NetWire.Spice;

/// <summary>Where a channel connection is in its life, as QEMU's SPICE_* QMP events.</summary>
internal enum SpiceChannelEventKind
{
    /// <summary>TCP accepted (before the link stage): SPICE_CONNECTED.</summary>
    Connected,

    /// <summary>Link result OK sent, the channel runs: SPICE_INITIALIZED.</summary>
    Initialized,

    /// <summary>The connection ended, whether it linked or not: SPICE_DISCONNECTED.</summary>
    Disconnected,
}

/// <summary>
/// One channel lifecycle event from <see cref="SpiceServer.ChannelEvents"/>. The connection
/// id and channel are set in <see cref="SpiceChannelEventKind.Initialized"/> only; Connected and
/// Disconnected carry the endpoints (QEMU's SPICE_CONNECTED / _DISCONNECTED have no more).
/// <c>Tls</c> is true for a connection on the TLS port.
/// </summary>
internal sealed record SpiceChannelEvent(
    SpiceChannelEventKind Kind,
    long Connection,
    EndPoint? Server,
    EndPoint? Client,
    uint ConnectionId,
    byte ChannelType,
    byte ChannelId,
    bool Tls = false);

/// <summary>A linked channel, for <c>query-spice</c>: its session, type, transport and client.</summary>
/// <param name="Connection">The connection number (logs).</param>
/// <param name="ConnectionId">The session id it belongs to.</param>
/// <param name="ChannelType">SPICE channel type (protocol.md §1.8).</param>
/// <param name="ChannelId">Channel instance id.</param>
/// <param name="Tls">True when it linked on the TLS port.</param>
/// <param name="Client">The client's address.</param>
internal sealed record SpiceChannelInfo(long Connection, uint ConnectionId, byte ChannelType, byte ChannelId, bool Tls, EndPoint? Client);
