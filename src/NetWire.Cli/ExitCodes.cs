using NetWire.Core.Net;

namespace NetWire.Cli;

/// <summary>What the process exit code means; documented in docs/cli.md.</summary>
internal static class ExitCodes
{
    /// <summary>Ran and stopped on request (SIGINT, SIGTERM).</summary>
    public const int Ok = 0;

    /// <summary>Failed while running (a device error).</summary>
    public const int Failure = 1;

    /// <summary>Bad command line: unknown option, bad spec.</summary>
    public const int Usage = 2;

    /// <summary>A device could not be opened: permission, busy address, missing interface.</summary>
    public const int Setup = 3;

    /// <summary>An option's value is wrong, or a file an option names cannot be read: a <see cref="Usage"/> error.</summary>
    public static bool IsBadOption(Exception ex) => ex is FormatException or ArgumentException || IoErrors.IsFileError(ex);
}
