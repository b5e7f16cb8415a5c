using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Spice.Link;

namespace NetWire.Spice;

/// <summary>SPICE server log events, ids 3000-3099 (link and main channel).</summary>
internal static partial class SpiceLog
{
    [LoggerMessage(3001, LogLevel.Information, "SPICE server listening on {EndPoint}")]
    public static partial void Listening(ILogger logger, EndPoint endPoint);

    [LoggerMessage(3002, LogLevel.Debug, "Link {ConnectionNumber} from {Remote}")]
    public static partial void LinkAccepted(ILogger logger, long connectionNumber, EndPoint? remote);

    [LoggerMessage(3003, LogLevel.Information, "Link {ConnectionNumber} refused: {Error} ({Reason})")]
    public static partial void LinkRefused(ILogger logger, long connectionNumber, SpiceLinkErr error, string reason);

    [LoggerMessage(3004, LogLevel.Information, "Link {ConnectionNumber} dropped: {Reason}")]
    public static partial void LinkDropped(ILogger logger, long connectionNumber, string reason);

    [LoggerMessage(3005, LogLevel.Debug, "Link {ConnectionNumber} evicted: the oldest silent of {Limit} links in progress, for a newer connection")]
    public static partial void LinkEvicted(ILogger logger, long connectionNumber, int limit);

    [LoggerMessage(3006, LogLevel.Warning, "{Limit} links in progress: evicting the oldest silent ones ({Evicted} so far)")]
    public static partial void LinksFull(ILogger logger, int limit, long evicted);

    [LoggerMessage(3007, LogLevel.Information, "SPICE server listening for TLS on {EndPoint} ({Certificate})")]
    public static partial void ListeningTls(ILogger logger, EndPoint endPoint, string certificate);

    [LoggerMessage(3008, LogLevel.Debug, "Link {ConnectionNumber}: {Tls}")]
    public static partial void TlsSecured(ILogger logger, long connectionNumber, string tls);

    [LoggerMessage(3009, LogLevel.Information, "Link {ConnectionNumber} refused on the TLS port: {Reason}")]
    public static partial void TlsRefused(ILogger logger, long connectionNumber, string reason);

    [LoggerMessage(3010, LogLevel.Information, "Session {SessionId}: main channel up (client caps common {CommonCaps:X} main {MainCaps:X}, {Header} header)")]
    public static partial void MainUp(ILogger logger, uint sessionId, uint commonCaps, uint mainCaps, string header);

    [LoggerMessage(3011, LogLevel.Information, "Session {SessionId}: main channel closed: {Reason} ({Detail})")]
    public static partial void MainClosed(ILogger logger, uint sessionId, EndReason reason, string detail);

    [LoggerMessage(3012, LogLevel.Debug, "Session {SessionId}: pong {PingId}, round trip {RoundTripMicros} us")]
    public static partial void Pong(ILogger logger, uint sessionId, uint pingId, long roundTripMicros);

    [LoggerMessage(3013, LogLevel.Debug, "Session {SessionId}: {Message} ignored: {Reason}")]
    public static partial void Ignored(ILogger logger, uint sessionId, ushort message, string reason);

    [LoggerMessage(3014, LogLevel.Debug, "Session {SessionId}: ATTACH_CHANNELS, {Count} channels listed")]
    public static partial void ChannelsListed(ILogger logger, uint sessionId, int count);

    [LoggerMessage(3015, LogLevel.Information, "Session {SessionId}: client disconnecting, reason {Reason}")]
    public static partial void ClientDisconnecting(ILogger logger, uint sessionId, uint reason);

    [LoggerMessage(3016, LogLevel.Debug, "Session {SessionId}: aborted: {Reason} ({Detail})")]
    public static partial void SessionAborted(ILogger logger, uint sessionId, EndReason reason, string detail);

    [LoggerMessage(3020, LogLevel.Error, "SPICE accept loop failed")]
    public static partial void AcceptFailed(ILogger logger, Exception exception);

    [LoggerMessage(3030, LogLevel.Information, "Session {SessionId}: {Message} sent")]
    public static partial void MigrationSent(ILogger logger, uint sessionId, string message);

    [LoggerMessage(3031, LogLevel.Information, "Session {SessionId}: client answered {Message}")]
    public static partial void MigrationAnswer(ILogger logger, uint sessionId, string message);

    [LoggerMessage(3032, LogLevel.Information, "Session {SessionId}: migration target linked, parked until the client's MIGRATE_END")]
    public static partial void MigrationTargetParked(ILogger logger, uint sessionId);

    [LoggerMessage(3033, LogLevel.Information, "Session {SessionId}: MIGRATE_END from the client, INIT sent, parked channels start")]
    public static partial void MigrationTargetStarted(ILogger logger, uint sessionId);

    [LoggerMessage(3034, LogLevel.Debug, "Link {ConnectionNumber}: channel {ChannelType}:{ChannelId} parked until session {SessionId} starts")]
    public static partial void ChannelParked(ILogger logger, long connectionNumber, byte channelType, byte channelId, uint sessionId);
}
