using Microsoft.Extensions.Logging;

namespace NetWire.Cli;

internal static partial class CliLog
{
    // 5001-5003, 5006-5008: ApplianceLog (the wire, the migration target).

    [LoggerMessage(5004, LogLevel.Information, "Stopping: {Reason}")]
    public static partial void Stopping(ILogger logger, string reason);

    [LoggerMessage(5005, LogLevel.Warning, "No SPICE password given: a random one is in {Path} (readable by you only); give --password-file or --disable-ticketing to choose")]
    public static partial void GeneratedPassword(ILogger logger, string path);
}
