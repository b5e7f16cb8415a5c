using Microsoft.Extensions.Logging;

namespace NetWire.Cli;

internal static partial class CliLog
{
    [LoggerMessage(5001, LogLevel.Information, "Bridge up: {Guest} <-> {Host}")]
    public static partial void BridgeUp(ILogger logger, string guest, string host);

    [LoggerMessage(5002, LogLevel.Information, "Attach a QEMU guest with: -netdev {Netdev} -device virtio-net-pci,netdev=n0")]
    public static partial void QemuHint(ILogger logger, string netdev);

    [LoggerMessage(5003, LogLevel.Information, "Capturing to {Path}")]
    public static partial void Capturing(ILogger logger, string path);

    [LoggerMessage(5004, LogLevel.Information, "Stopping: {Reason}")]
    public static partial void Stopping(ILogger logger, string reason);

    [LoggerMessage(5005, LogLevel.Warning, "No SPICE password given: a random one is in {Path} (readable by you only); give --password-file or --disable-ticketing to choose")]
    public static partial void GeneratedPassword(ILogger logger, string path);

    [LoggerMessage(5006, LogLevel.Information, "Migration target on {Uri} ready: {Methods} methods compiled ahead in {Milliseconds} ms")]
    public static partial void TargetReady(ILogger logger, string uri, int methods, long milliseconds);

    [LoggerMessage(5007, LogLevel.Information, "Migration: the {End} end continues the source's counters ({Description}: {RxFrames} frames in, {TxFrames} out)")]
    public static partial void WireCountersContinued(ILogger logger, string end, string description, long rxFrames, long txFrames);

    [LoggerMessage(5008, LogLevel.Warning, "Migration: the source's {End} end ({Description}) has no end here; its counters are not carried")]
    public static partial void WireCountersLeft(ILogger logger, string end, string description);
}
