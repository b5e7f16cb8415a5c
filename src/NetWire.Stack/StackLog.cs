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

    [LoggerMessage(2010, LogLevel.Warning, "Migration: no network lock ({Reason}); the gateway's TCP connections are reset instead of moved")]
    public static partial void NoNetworkLock(ILogger logger, string reason);

    [LoggerMessage(2011, LogLevel.Information, "Migration: connection {Flow} cannot move: {Reason}")]
    public static partial void FlowNotDumped(ILogger logger, string flow, string reason);

    [LoggerMessage(2012, LogLevel.Warning, "Migration: connection {Flow} cannot be restored: {Reason}")]
    public static partial void FlowNotRestored(ILogger logger, string flow, string reason);

    [LoggerMessage(2013, LogLevel.Information, "Migration: connection {Flow} reset towards the guest ({Reason})")]
    public static partial void FlowReset(ILogger logger, string flow, string reason);

    [LoggerMessage(2014, LogLevel.Information, "Migration: {Moved} TCP connections and {Datagrams} datagram flows {Direction}, {Reset} reset ({Reasons})")]
    public static partial void FlowsMigrated(ILogger logger, int moved, int datagrams, string direction, int reset, string reasons);

    [LoggerMessage(2015, LogLevel.Debug, "Connection {Flow}: host socket failed: {Reason}")]
    public static partial void HostSocketFailed(ILogger logger, string flow, string reason);

    [LoggerMessage(2016, LogLevel.Warning, "Migration: forward {Forward} of the source cannot be opened here: {Reason}")]
    public static partial void ForwardNotAdopted(ILogger logger, string forward, string reason);
}
