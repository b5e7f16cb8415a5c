using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace NetWire.Testing;

/// <summary>
/// Runs host commands for tests: to completion with captured output and a timeout, or in the
/// background as a <see cref="ManagedProcess"/>. Children are only ever ended by their own pid.
/// </summary>
public static class ProcessRunner
{
    /// <summary>The timeout of <see cref="RunAsync"/> when none is given.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long to keep reading a child's pipes after it exited. A grandchild that inherited
    /// them (a daemon, a background job of a shell) can hold them open for its whole life.
    /// </summary>
    internal static readonly TimeSpan DrainGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Runs <paramref name="file"/> with <paramref name="args"/> (no shell) and returns its exit code and output.
    /// </summary>
    /// <param name="file">The program, found on PATH when it has no slash.</param>
    /// <param name="args">Its arguments, passed as they are.</param>
    /// <param name="timeout">How long it may run (default 60 s); then it is killed by pid and a <see cref="TimeoutException"/> is thrown.</param>
    /// <param name="stdin">Text written to its stdin; stdin is closed after it (at once when null), so readers see EOF.</param>
    /// <remarks>When the running test is cancelled, the child is killed by pid and <see cref="OperationCanceledException"/> is thrown.</remarks>
    public static Task<ProcessResult> RunAsync(
        string file,
        IEnumerable<string> args,
        TimeSpan? timeout = null,
        string? stdin = null) =>
        RunAsync(file, args, timeout, stdin, TestCancellation.Token);

    internal static async Task<ProcessResult> RunAsync(
        string file,
        IEnumerable<string> args,
        TimeSpan? timeout,
        string? stdin,
        CancellationToken cancellationToken)
    {
        var argList = args.ToArray();
        var command = FormatCommand(file, argList);
        var limit = timeout ?? DefaultTimeout;

        using var process = new Process { StartInfo = CreateStartInfo(file, argList, null) };
        StartOrThrow(process, command);

        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var stdoutPump = PumpTextAsync(process.StandardOutput, stdout);
        var stderrPump = PumpTextAsync(process.StandardError, stderr);
        var stdinFeed = FeedStdinAsync(process, stdin);

        using var limitCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limitCts.CancelAfter(limit);
        try
        {
            await process.WaitForExitAsync(limitCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            KillByPid(process);
            await WaitQuietlyAsync(process.WaitForExitAsync(CancellationToken.None), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            await WaitQuietlyAsync(Task.WhenAll(stdoutPump, stderrPump), DrainGrace).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            throw new TimeoutException(
                $"'{command}' did not finish within {limit.TotalSeconds:0.#} s; killed pid {process.Id}."
                + $"{Environment.NewLine}stdout so far:{Environment.NewLine}{Snapshot(stdout)}"
                + $"{Environment.NewLine}stderr so far:{Environment.NewLine}{Snapshot(stderr)}");
        }

        await WaitQuietlyAsync(Task.WhenAll(stdoutPump, stderrPump, stdinFeed), DrainGrace).ConfigureAwait(false);
        return new ProcessResult(process.ExitCode, Snapshot(stdout), Snapshot(stderr)) { Command = command };
    }

    /// <summary>
    /// Starts <paramref name="file"/> in the background. Its stdout and stderr are collected line by
    /// line; its stdin is a pipe that stays open until <see cref="ManagedProcess.CloseStandardInput"/>
    /// or disposal (a busybox <c>nc</c> listener, for one, half-closes its connection on stdin EOF).
    /// </summary>
    /// <param name="file">The program, found on PATH when it has no slash.</param>
    /// <param name="args">Its arguments, passed as they are.</param>
    /// <param name="environment">Extra environment variables; a null value removes a variable.</param>
    public static ManagedProcess Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var argList = args.ToArray();
        var command = FormatCommand(file, argList);
        var process = new Process { StartInfo = CreateStartInfo(file, argList, environment) };
        try
        {
            StartOrThrow(process, command);
        }
        catch
        {
            process.Dispose();
            throw;
        }

        return new ManagedProcess(process, command);
    }

    /// <summary>Formats a command line for messages, quoting arguments that need it.</summary>
    public static string FormatCommand(string file, IEnumerable<string> args) =>
        string.Join(' ', new[] { file }.Concat(args).Select(Quote));

    internal static void KillByPid(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: false);
        }
        catch (InvalidOperationException)
        {
            // It exited between the check and the kill: nothing left to end.
        }
    }

    internal static async Task WaitQuietlyAsync(Task task, TimeSpan limit)
    {
        try
        {
            await task.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // The caller goes on with what it has; the reason is in the output it reports.
        }
    }

    private static ProcessStartInfo CreateStartInfo(string file, string[] args, IReadOnlyDictionary<string, string?>? environment)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        if (environment is not null)
        {
            foreach (var (name, value) in environment)
            {
                if (value is null)
                {
                    psi.Environment.Remove(name);
                }
                else
                {
                    psi.Environment[name] = value;
                }
            }
        }

        return psi;
    }

    private static void StartOrThrow(Process process, string command)
    {
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"Cannot start '{command}': {e.Message}", e);
        }
    }

    private static async Task FeedStdinAsync(Process process, string? stdin)
    {
        try
        {
            if (stdin is not null)
            {
                await process.StandardInput.WriteAsync(stdin).ConfigureAwait(false);
                await process.StandardInput.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (IOException)
        {
            // The child closed its stdin early (EPIPE); its exit status says whether that matters.
        }
        finally
        {
            try
            {
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // Same as above: a broken pipe on the final flush.
            }
        }
    }

    private static async Task PumpTextAsync(StreamReader reader, StringBuilder sink)
    {
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            lock (sink)
            {
                sink.Append(buffer, 0, read);
            }
        }
    }

    private static string Snapshot(StringBuilder sink)
    {
        lock (sink)
        {
            return sink.ToString();
        }
    }

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,@+%".Contains(c, StringComparison.Ordinal))
            ? arg
            : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
