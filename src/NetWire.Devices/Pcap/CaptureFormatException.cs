namespace NetWire.Devices.Pcap;

/// <summary>
/// A capture file is not valid pcap or pcapng. The message names the file, the record (1-based;
/// 0 for the file header) and the byte offset where the problem starts, and is meant for the user.
/// </summary>
public sealed class CaptureFormatException : Exception
{
    /// <summary>Creates the exception; the message is built from the parts.</summary>
    public CaptureFormatException(string path, long record, long offset, string problem)
        : base($"{path}: record {record} at byte offset {offset}: {problem}")
    {
        Path = path;
        Record = record;
        Offset = offset;
        Problem = problem;
    }

    /// <summary>The file as given.</summary>
    public string Path { get; }

    /// <summary>1-based record (packet) number; 0 for the file header or a non-packet block before the first packet.</summary>
    public long Record { get; }

    /// <summary>Byte offset of the record's (or block's) header in the file.</summary>
    public long Offset { get; }

    /// <summary>What is wrong, without the location.</summary>
    public string Problem { get; }
}
