namespace NetWire.Testing;

/// <summary>Which pipe a line of child output came from.</summary>
public enum OutputStream
{
    /// <summary>The child's stdout.</summary>
    Stdout,

    /// <summary>The child's stderr.</summary>
    Stderr,
}

/// <summary>One line of output of a <see cref="ManagedProcess"/>.</summary>
/// <param name="Elapsed">Time since the process was started when the line was read.</param>
/// <param name="Stream">The pipe it came from.</param>
/// <param name="Text">The line, without its line ending.</param>
public readonly record struct OutputLine(TimeSpan Elapsed, OutputStream Stream, string Text)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"[+{Elapsed.TotalSeconds,8:F3}s {(Stream == OutputStream.Stderr ? "err" : "out")}] {Text}";
}
