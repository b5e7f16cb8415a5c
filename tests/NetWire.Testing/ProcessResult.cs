namespace NetWire.Testing;

/// <summary>The outcome of a process run to completion by <see cref="ProcessRunner.RunAsync"/>.</summary>
/// <param name="ExitCode">The exit status; 128 + N when the process died from signal N.</param>
/// <param name="Stdout">Everything the process wrote to stdout.</param>
/// <param name="Stderr">Everything the process wrote to stderr.</param>
public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>The command line that was run, for messages.</summary>
    public string Command { get; init; } = "";

    /// <summary>True when <see cref="ExitCode"/> is 0.</summary>
    public bool Succeeded => ExitCode == 0;

    /// <summary>Returns this result, or throws with the command and its output when it failed.</summary>
    public ProcessResult EnsureSuccess()
    {
        if (!Succeeded)
        {
            throw new InvalidOperationException(
                $"'{Command}' exited with {ExitCode}.{Environment.NewLine}stdout:{Environment.NewLine}{Stdout}{Environment.NewLine}stderr:{Environment.NewLine}{Stderr}");
        }

        return this;
    }
}
