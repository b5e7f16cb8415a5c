using Microsoft.Extensions.Logging;
using NetWire.Core.Net;

namespace NetWire.Tunnel;

/// <summary>Tunnel channel log events, ids 3200-3249 (server side) and 3250-3299 (tunnel client).</summary>
internal static partial class TunnelLog
{
    [LoggerMessage(3200, LogLevel.Information, "Tunnel {Channel}: up for session {SessionId}")]
    public static partial void ChannelUp(ILogger logger, long channel, uint sessionId);

    [LoggerMessage(3201, LogLevel.Information, "Tunnel {Channel}: closed: {Reason} ({Detail})")]
    public static partial void ChannelClosed(ILogger logger, long channel, EndReason reason, string detail);

    [LoggerMessage(3202, LogLevel.Information, "Tunnel {Channel}: service {ServiceId} '{Name}' port {Port} at {VirtualIp}")]
    public static partial void ServiceAdded(ILogger logger, long channel, uint serviceId, string name, ushort port, string virtualIp);

    [LoggerMessage(3203, LogLevel.Information, "Tunnel {Channel}: service {ServiceId} removed")]
    public static partial void ServiceRemoved(ILogger logger, long channel, uint serviceId);

    [LoggerMessage(3204, LogLevel.Debug, "Tunnel {Channel}: socket {ConnectionId} {Event}")]
    public static partial void Socket(ILogger logger, long channel, ushort connectionId, string @event);

    [LoggerMessage(3205, LogLevel.Warning, "Tunnel {Channel}: refused: {Reason}")]
    public static partial void Refused(ILogger logger, long channel, string reason);

    [LoggerMessage(3206, LogLevel.Information, "Tunnel {Channel}: migration: {Event}")]
    public static partial void Migration(ILogger logger, long channel, string @event);

    [LoggerMessage(3207, LogLevel.Information, "Tunnel sockets: migration: {Event}")]
    public static partial void SectionMigration(ILogger logger, string @event);

    [LoggerMessage(3253, LogLevel.Information, "Tunnel client: migration: {Event}")]
    public static partial void ClientMigration(ILogger logger, string @event);

    [LoggerMessage(3250, LogLevel.Information, "Tunnel client: linked to {Server}, session {SessionId}")]
    public static partial void ClientLinked(ILogger logger, string server, uint sessionId);

    [LoggerMessage(3251, LogLevel.Warning, "Tunnel client: connection to {Server} ended: {Reason} ({Detail}); retrying in {DelayMs} ms")]
    public static partial void ClientRetry(ILogger logger, string server, EndReason reason, string detail, long delayMs);

    [LoggerMessage(3252, LogLevel.Debug, "Tunnel client: socket {ConnectionId} {Event}")]
    public static partial void ClientSocket(ILogger logger, ushort connectionId, string @event);
}
