using System.CommandLine;
using System.Globalization;
using NetWire.Core.Net;
using NetWire.Core.Taps;
using NetWire.Core.Wire;

namespace NetWire.Cli.Commands;

/// <summary>
/// The capture options (<c>--capture</c>, <c>--snaplen</c>, <c>--capture-max-mb</c>), shared by
/// <c>bridge</c>, <c>run</c> and <c>serve</c>, and the opening of the pcapng sink they describe.
/// </summary>
internal sealed class CaptureCliOptions
{
    /// <summary>One "MB" of <c>--capture-max-mb</c>, as tcpdump's <c>-C</c> counts it.</summary>
    public const long BytesPerMb = 1_000_000;

    public Option<string?> Capture { get; } = new("--capture")
    {
        Description = "Record every frame crossing the wire, with its direction, as pcapng: a file, a FIFO, or '-' for standard output (pipe it to 'tshark -r -' to watch live)",
        HelpName = "FILE",
    };

    public Option<int> SnapLength { get; } = new("--snaplen")
    {
        Description = $"Bytes kept of each captured frame (1-{PcapNgWriter.MaxSnapLength}); the original length is recorded too",
        DefaultValueFactory = _ => PcapNgWriter.MaxSnapLength,
        HelpName = "N",
    };

    public Option<double?> MaxMb { get; } = new("--capture-max-mb")
    {
        Description = "Start a new capture file before one passes N million bytes: FILE.pcapng, FILE.1.pcapng, FILE.2.pcapng, ... (regular files only)",
        HelpName = "N",
    };

    public IEnumerable<Option> All => [Capture, SnapLength, MaxMb];

    /// <summary>Reads and validates the options; null without <c>--capture</c>. Throws <see cref="FormatException"/> with the reason.</summary>
    public CaptureRequest? Read(ParseResult parse)
    {
        var path = parse.GetValue(Capture);
        var snap = parse.GetValue(SnapLength);
        var maxMb = parse.GetValue(MaxMb);
        if (snap is < 1 or > PcapNgWriter.MaxSnapLength)
        {
            throw new FormatException($"--snaplen must be 1 to {PcapNgWriter.MaxSnapLength}, not {snap}");
        }

        if (path is null)
        {
            if (maxMb is not null || parse.GetResult(SnapLength) is { Implicit: false })
            {
                throw new FormatException("--snaplen and --capture-max-mb need --capture");
            }

            return null;
        }

        long maxBytes = 0;
        if (maxMb is { } mb)
        {
            var min = PcapNgWriter.MinFileBytes(snap);
            if (double.IsNaN(mb) || mb * BytesPerMb < min || mb > 1e9)
            {
                throw new FormatException($"--capture-max-mb must be at least {((double)min / BytesPerMb).ToString("0.###", CultureInfo.InvariantCulture)} for --snaplen {snap} (one whole frame and the headers)");
            }

            if (path == "-")
            {
                throw new FormatException("--capture-max-mb needs a file, not standard output");
            }

            maxBytes = (long)(mb * BytesPerMb);
        }

        return new CaptureRequest(path, new PcapNgWriterOptions { SnapLength = snap, MaxFileBytes = maxBytes });
    }
}

/// <summary>Where and how to capture, validated.</summary>
internal sealed record CaptureRequest(string Path, PcapNgWriterOptions Options)
{
    /// <summary>Opens the sink; a FIFO waits here for its reader. Throws <see cref="WireSetupException"/> when it cannot.</summary>
    public PcapNgWriter Open()
    {
        try
        {
            return PcapNgWriter.Create(Path, Options);
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex) || ex is ArgumentException)
        {
            throw new WireSetupException($"cannot write capture '{Path}': {ex.Message}");
        }
    }
}
