using System.Diagnostics;
using System.Text;

namespace NetWire.Testing;

/// <summary>
/// A background child started by <see cref="ProcessRunner.Start"/>. Its stdout and stderr are
/// read line by line into a thread-safe buffer that tests can wait on. Disposal ends it by pid:
/// SIGTERM, up to 5 s of grace, then SIGKILL.
/// </summary>
public sealed class ManagedProcess : IAsyncDisposable
{
    private static readonly TimeSpan s_termGrace = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _gate = new();
    private readonly List<OutputLine> _lines = [];
    private readonly Task _completion;
    private TaskCompletionSource _changed = NewSignal();
    private bool _finished;
    private int? _exitCode;
    private int _disposed;

    internal ManagedProcess(Process process, string command)
    {
        _process = process;
        Command = command;
        Pid = process.Id;
        var stdoutPump = PumpLinesAsync(process.StandardOutput, OutputStream.Stdout);
        var stderrPump = PumpLinesAsync(process.StandardError, OutputStream.Stderr);
        _completion = CompleteAsync(stdoutPump, stderrPump);
    }

    /// <summary>The child's process id.</summary>
    public int Pid { get; }

    /// <summary>The command line, for messages.</summary>
    public string Command { get; }

    /// <summary>The underlying process, for what this wrapper does not cover.</summary>
    public Process Process => _process;

    /// <summary>True once the child has exited and its output has been read.</summary>
    public bool HasExited
    {
        get
        {
            lock (_gate)
            {
                return _finished;
            }
        }
    }

    /// <summary>The exit status once <see cref="HasExited"/>; 128 + N after signal N.</summary>
    public int? ExitCode
    {
        get
        {
            lock (_gate)
            {
                return _exitCode;
            }
        }
    }

    /// <summary>Time since the child was started.</summary>
    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>A snapshot of every line read so far, stdout and stderr interleaved as they arrived.</summary>
    public IReadOnlyList<OutputLine> Lines
    {
        get
        {
            lock (_gate)
            {
                return _lines.ToArray();
            }
        }
    }

    /// <summary>A snapshot of the stdout lines read so far.</summary>
    public IReadOnlyList<string> StdoutLines => LinesOf(OutputStream.Stdout);

    /// <summary>A snapshot of the stderr lines read so far.</summary>
    public IReadOnlyList<string> StderrLines => LinesOf(OutputStream.Stderr);

    /// <summary>All output so far, one timestamped line per line, for failure messages.</summary>
    public string FormattedOutput
    {
        get
        {
            var builder = new StringBuilder();
            foreach (var line in Lines)
            {
                builder.AppendLine(line.ToString());
            }

            return builder.ToString();
        }
    }

    /// <summary>The child's stdin, for binary or text input. It stays open until closed or disposed.</summary>
    public Stream StandardInput => _process.StandardInput.BaseStream;

    /// <summary>Closes the child's stdin, so that it reads EOF.</summary>
    public void CloseStandardInput()
    {
        try
        {
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The child is gone or closed its end: it can no longer read anyway.
        }
    }

    /// <summary>
    /// Waits until a line (stdout or stderr, from the start of the output) satisfies
    /// <paramref name="match"/>, and returns it.
    /// </summary>
    /// <exception cref="TimeoutException">No such line within <paramref name="timeout"/>; the message has the output so far.</exception>
    /// <exception cref="InvalidOperationException">The child exited first; the message has its output.</exception>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(match);
        var cancellationToken = TestCancellation.Token;
        using var limitCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limitCts.CancelAfter(timeout);
        var next = 0;
        while (true)
        {
            OutputLine[] fresh;
            Task changed;
            bool finished;
            lock (_gate)
            {
                fresh = _lines.Skip(next).ToArray();
                next = _lines.Count;
                changed = _changed.Task;
                finished = _finished;
            }

            foreach (var line in fresh)
            {
                if (match(line.Text))
                {
                    return line.Text;
                }
            }

            if (finished)
            {
                throw new InvalidOperationException(
                    $"'{Command}' (pid {Pid}) exited with {ExitCode} before the awaited line appeared.{Environment.NewLine}{FormattedOutput}");
            }

            try
            {
                await changed.WaitAsync(limitCts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException(
                    $"'{Command}' (pid {Pid}) printed no awaited line within {timeout.TotalSeconds:0.#} s.{Environment.NewLine}{FormattedOutput}");
            }
        }
    }

    /// <summary>Waits for the child to exit (and its output to be read) and returns its exit status.</summary>
    /// <exception cref="TimeoutException">It is still running after <paramref name="timeout"/>; it is left running.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _completion.WaitAsync(timeout, TestCancellation.Token).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"'{Command}' (pid {Pid}) still runs after {timeout.TotalSeconds:0.#} s.{Environment.NewLine}{FormattedOutput}");
        }

        return ExitCode!.Value;
    }

    /// <summary>Sends SIGTERM to the child (by pid) unless it has already exited.</summary>
    public void Terminate() => Signal(LibC.SigTerm);

    /// <summary>Sends <paramref name="signal"/> (for example 2 for SIGINT) to the child, by pid, unless it has already exited.</summary>
    public void Signal(int signal)
    {
        if (Volatile.Read(ref _disposed) == 0 && !_process.HasExited)
        {
            _ = LibC.kill(Pid, signal);
        }
    }

    /// <summary>Ends the child if it still runs (SIGTERM, 5 s, SIGKILL), by pid only.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _ = LibC.kill(Pid, LibC.SigTerm);
            if (!await FinishesWithinAsync(s_termGrace).ConfigureAwait(false))
            {
                ProcessRunner.KillByPid(_process);
                await FinishesWithinAsync(s_termGrace).ConfigureAwait(false);
            }
        }

        CloseStandardInput();
        await FinishesWithinAsync(ProcessRunner.DrainGrace).ConfigureAwait(false);
        _process.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private string[] LinesOf(OutputStream stream)
    {
        lock (_gate)
        {
            return _lines.Where(l => l.Stream == stream).Select(l => l.Text).ToArray();
        }
    }

    private async Task<bool> FinishesWithinAsync(TimeSpan limit)
    {
        try
        {
            await _completion.WaitAsync(limit).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    private void Append(OutputStream stream, string text)
    {
        TaskCompletionSource signal;
        lock (_gate)
        {
            _lines.Add(new OutputLine(_clock.Elapsed, stream, text));
            signal = _changed;
            _changed = NewSignal();
        }

        signal.TrySetResult();
    }

    // Lines end at '\n' only: the serial console writes "\r\n", and a bare '\r' would
    // otherwise split one guest line into two.
    private async Task PumpLinesAsync(StreamReader reader, OutputStream stream)
    {
        var buffer = new char[4096];
        var pending = new StringBuilder();
        int read;
        while ((read = await reader.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            for (var i = 0; i < read; i++)
            {
                if (buffer[i] == '\n')
                {
                    Append(stream, pending.ToString().TrimEnd('\r'));
                    pending.Clear();
                }
                else
                {
                    pending.Append(buffer[i]);
                }
            }
        }

        if (pending.Length > 0)
        {
            Append(stream, pending.ToString().TrimEnd('\r'));
        }
    }

    private async Task CompleteAsync(Task stdoutPump, Task stderrPump)
    {
        await _process.WaitForExitAsync().ConfigureAwait(false);
        await ProcessRunner.WaitQuietlyAsync(Task.WhenAll(stdoutPump, stderrPump), ProcessRunner.DrainGrace).ConfigureAwait(false);
        TaskCompletionSource signal;
        lock (_gate)
        {
            _exitCode = _process.ExitCode;
            _finished = true;
            signal = _changed;
            _changed = NewSignal();
        }

        signal.TrySetResult();
    }
}
