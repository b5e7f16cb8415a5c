using Microsoft.Extensions.Logging;

namespace NetWire.Core.Wire;

internal static partial class WireLog
{
    [LoggerMessage(1001, LogLevel.Error, "Wire end {End} failed")]
    public static partial void EndFailed(ILogger logger, string end, Exception exception);
}
