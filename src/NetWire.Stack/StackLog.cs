using Microsoft.Extensions.Logging;

namespace NetWire.Stack;

/// <summary>Log events of the user-mode gateway (band 2xxx).</summary>
internal static partial class StackLog
{
    [LoggerMessage(2001, LogLevel.Information, "Forwarding {Forward}")]
    public static partial void Forwarding(ILogger logger, string forward);

    [LoggerMessage(2002, LogLevel.Warning, "Pings to outside addresses are dropped: no unprivileged ICMP socket ({Error}: {Reason})")]
    public static partial void IcmpUnavailable(ILogger logger, string error, string reason);

    [LoggerMessage(2003, LogLevel.Information, "No longer forwarding {Forward}")]
    public static partial void ForwardRemoved(ILogger logger, string forward);

    [LoggerMessage(2004, LogLevel.Warning, "Forward {Forward} stopped: {Reason}")]
    public static partial void ForwardFailed(ILogger logger, string forward, string reason);
}
