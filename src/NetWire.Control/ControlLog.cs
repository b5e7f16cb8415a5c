using Microsoft.Extensions.Logging;
using NetWire.Core.Net;

namespace NetWire.Control;

/// <summary>Control socket log events, ids 52xx.</summary>
internal static partial class ControlLog
{
    [LoggerMessage(5201, LogLevel.Information, "Control socket (QMP) on {EndPoint}")]
    public static partial void Listening(ILogger logger, string endPoint);

    [LoggerMessage(5202, LogLevel.Debug, "Control client {Client} connected")]
    public static partial void ClientConnected(ILogger logger, long client);

    [LoggerMessage(5203, LogLevel.Debug, "Control client {Client} left: {Reason}")]
    public static partial void ClientLeft(ILogger logger, long client, EndReason reason);

    [LoggerMessage(5204, LogLevel.Warning, "Control client refused: {Max} clients already")]
    public static partial void TooManyClients(ILogger logger, int max);

    [LoggerMessage(5205, LogLevel.Information, "Control client {Client}: {Command}")]
    public static partial void Command(ILogger logger, long client, string command);

    [LoggerMessage(5206, LogLevel.Error, "Control command {Command} failed unexpectedly")]
    public static partial void CommandFailed(ILogger logger, string command, Exception exception);

    [LoggerMessage(5207, LogLevel.Warning, "Control client {Client} dropped: it does not read its events")]
    public static partial void SlowClient(ILogger logger, long client);

    [LoggerMessage(5208, LogLevel.Error, "Control socket accept failed")]
    public static partial void AcceptFailed(ILogger logger, Exception exception);

    [LoggerMessage(5209, LogLevel.Warning, "Control socket {EndPoint} is not on a loopback address and has no authentication: anyone who reaches it controls the appliance (prefer unix:PATH)")]
    public static partial void Unauthenticated(ILogger logger, string endPoint);
}
