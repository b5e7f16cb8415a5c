using Microsoft.Extensions.Logging;

namespace NetWire.Core.Wire;

internal static partial class WireLog
{
    [LoggerMessage(1001, LogLevel.Error, "Wire end {End} failed")]
    public static partial void EndFailed(ILogger logger, string end, Exception exception);

    [LoggerMessage(1002, LogLevel.Warning, "Wire end {End} stopped: {Reason}")]
    public static partial void EndStopped(ILogger logger, string end, string reason);
}
