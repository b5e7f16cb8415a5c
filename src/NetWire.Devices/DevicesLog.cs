using Microsoft.Extensions.Logging;
using NetWire.Core.Net;

namespace NetWire.Devices;

internal static partial class DevicesLog
{
    [LoggerMessage(4001, LogLevel.Information, "TAP {Interface} attached")]
    public static partial void TapOpened(ILogger logger, string @interface);

    [LoggerMessage(4002, LogLevel.Warning, "TAP {Interface} could not be brought up: {Reason}")]
    public static partial void TapNotUp(ILogger logger, string @interface, string reason);

    [LoggerMessage(4003, LogLevel.Debug, "TAP {Interface} offloads {Offloads}")]
    public static partial void TapOffloads(ILogger logger, string @interface, string offloads);

    [LoggerMessage(4004, LogLevel.Information, "TAP {Interface} refused offloads ({Reason}); frames from it stay plain")]
    public static partial void TapOffloadsRefused(ILogger logger, string @interface, string reason);

    [LoggerMessage(4005, LogLevel.Information, "TAP {Interface} is open in another process (a migration source): attaching once it is free")]
    public static partial void TapBusyWaiting(ILogger logger, string @interface);

    [LoggerMessage(4006, LogLevel.Information, "TAP {Interface}: reads through io_uring stopped ({Reason}); reading frame by frame")]
    public static partial void TapReadRingOff(ILogger logger, string @interface, string reason);

    [LoggerMessage(4101, LogLevel.Information, "Guest {End} listening on {Address}")]
    public static partial void Listening(ILogger logger, string end, string address);

    [LoggerMessage(4102, LogLevel.Information, "Guest {End} connected ({Address})")]
    public static partial void GuestConnected(ILogger logger, string end, string address);

    [LoggerMessage(4103, LogLevel.Information, "Guest {End} disconnected: {Reason} ({Detail})")]
    public static partial void GuestDisconnected(ILogger logger, string end, EndReason reason, string detail);

    [LoggerMessage(4104, LogLevel.Warning, "Guest {End} sent a frame length of {Length} (allowed {Min} to {Max}); connection closed")]
    public static partial void BadFrameLength(ILogger logger, string end, uint length, int min, int max);

    [LoggerMessage(4105, LogLevel.Warning, "Guest {End} closed the connection in the middle of a frame ({Bytes} bytes pending)")]
    public static partial void TruncatedFrame(ILogger logger, string end, int bytes);

    [LoggerMessage(4106, LogLevel.Information, "Guest {End} refused a second connection from {Address}: one guest per wire")]
    public static partial void SecondGuestRefused(ILogger logger, string end, string address);

    [LoggerMessage(4107, LogLevel.Debug, "Guest {End} connect to {Address} failed, retrying: {Reason}")]
    public static partial void ConnectRetry(ILogger logger, string end, string address, string reason);

    [LoggerMessage(4108, LogLevel.Warning, "Guest {End} send failed: {Reason}")]
    public static partial void SendFailed(ILogger logger, string end, string reason);

    [LoggerMessage(4201, LogLevel.Information, "pcap device {Interface} opened{Filter}")]
    public static partial void PcapOpened(ILogger logger, string @interface, string filter);

    [LoggerMessage(4202, LogLevel.Warning, "pcap device {Interface}: capture direction could not be limited to inbound; injected frames may be seen again")]
    public static partial void PcapNoDirection(ILogger logger, string @interface);
}
