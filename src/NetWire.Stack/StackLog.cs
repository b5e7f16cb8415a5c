using Microsoft.Extensions.Logging;

namespace NetWire.Stack;

/// <summary>Log events of the user-mode gateway (band 2xxx).</summary>
internal static partial class StackLog
{
    [LoggerMessage(2001, LogLevel.Information, "Forwarding {Forward}")]
    public static partial void Forwarding(ILogger logger, string forward);
}
