using Microsoft.Extensions.Logging;

namespace NetWire.Appliance;

/// <summary>Log events of the appliance's parts: the wire, the migration target, the wire's state section, the metrics endpoint.</summary>
internal static partial class ApplianceLog
{
    [LoggerMessage(5001, LogLevel.Information, "Bridge up: {Guest} <-> {Host}")]
    public static partial void BridgeUp(ILogger logger, string guest, string host);

    [LoggerMessage(5002, LogLevel.Information, "Attach a QEMU guest with: -netdev {Netdev} -device virtio-net-pci,netdev=n0")]
    public static partial void QemuHint(ILogger logger, string netdev);

    [LoggerMessage(5003, LogLevel.Information, "Capturing to {Path}")]
    public static partial void Capturing(ILogger logger, string path);

    // 5004, 5005: CliLog.

    [LoggerMessage(5006, LogLevel.Information, "Migration target on {Uri} ready: {Methods} methods compiled ahead in {Milliseconds} ms")]
    public static partial void TargetReady(ILogger logger, string uri, int methods, long milliseconds);

    [LoggerMessage(5007, LogLevel.Information, "Migration: the {End} end continues the source's counters ({Description}: {RxFrames} frames in, {TxFrames} out)")]
    public static partial void WireCountersContinued(ILogger logger, string end, string description, long rxFrames, long txFrames);

    [LoggerMessage(5008, LogLevel.Warning, "Migration: the source's {End} end ({Description}) has no end here; its counters are not carried")]
    public static partial void WireCountersLeft(ILogger logger, string end, string description);

    [LoggerMessage(5009, LogLevel.Warning, "Status file {Path} cannot be written: {Reason}; the wire carries on, and the file is written again once it can be")]
    public static partial void StatusWriteFailed(ILogger logger, string path, string reason);

    [LoggerMessage(5010, LogLevel.Information, "Status file {Path} written again after {Failures} failed writes")]
    public static partial void StatusWriteRecovered(ILogger logger, string path, long failures);

    [LoggerMessage(5011, LogLevel.Information, "Migration completed: the wire is handed over to the target and its ends are closed")]
    public static partial void WireHandedOver(ILogger logger);

    [LoggerMessage(5012, LogLevel.Information, "Metrics served at http://{EndPoint}/metrics")]
    public static partial void MetricsServed(ILogger logger, string endPoint);
}
