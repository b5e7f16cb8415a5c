namespace NetWire.Testing;

/// <summary>
/// A throw-away network namespace (<c>nwt-PID-N</c>) with <c>lo</c> up. Commands run in it through
/// <c>ip netns exec</c>. Disposal ends the background children started here, then whatever else
/// still runs inside (by pid, from <c>ip netns pids</c>), then deletes the namespace, which also
/// removes the TAP and veth ends that live in it. Needs root.
/// </summary>
public sealed class NetNamespace : IAsyncDisposable
{
    private static int s_counter;

    private readonly List<ManagedProcess> _children = [];
    private readonly Lock _gate = new();
    private int _disposed;

    private NetNamespace(string name)
    {
        Name = name;
    }

    /// <summary>The namespace name, as <c>ip netns</c> knows it.</summary>
    public string Name { get; }

    /// <summary>Creates a uniquely named namespace and brings its loopback up.</summary>
    public static async Task<NetNamespace> CreateAsync()
    {
        for (var attempt = 0; ; attempt++)
        {
            var name = $"nwt-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
            var add = await ProcessRunner.RunAsync("ip", ["netns", "add", name]).ConfigureAwait(false);
            if (!add.Succeeded)
            {
                // A namespace left behind by an earlier run whose pid we now have: take the next number.
                if (attempt < 20 && add.Stderr.Contains("exists", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                add.EnsureSuccess();
            }

            var ns = new NetNamespace(name);
            try
            {
                (await ns.ExecAsync("ip", "link", "set", "lo", "up").ConfigureAwait(false)).EnsureSuccess();
            }
            catch
            {
                await ns.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            return ns;
        }
    }

    /// <summary>Runs <paramref name="command"/> in the namespace to completion (60 s limit, then killed by pid).</summary>
    public Task<ProcessResult> ExecAsync(string command, params string[] args) =>
        ExecAsync([command, .. args]);

    /// <summary>Runs a command line in the namespace to completion.</summary>
    /// <param name="commandLine">The program and its arguments.</param>
    /// <param name="timeout">Time limit (default 60 s); then the child is killed by pid and <see cref="TimeoutException"/> thrown.</param>
    /// <param name="stdin">Text for its stdin, which is closed afterwards.</param>
    public Task<ProcessResult> ExecAsync(
        IReadOnlyList<string> commandLine,
        TimeSpan? timeout = null,
        string? stdin = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(commandLine.Count);
        return ProcessRunner.RunAsync("ip", ["netns", "exec", Name, .. commandLine], timeout, stdin);
    }

    /// <summary>Runs <paramref name="script"/> with <c>sh -c</c> in the namespace to completion.</summary>
    public Task<ProcessResult> ExecShellAsync(string script, TimeSpan? timeout = null) =>
        ExecAsync(["sh", "-c", script], timeout, null);

    /// <summary>
    /// Starts a long-running <paramref name="command"/> in the namespace. <c>ip netns exec</c> execs it,
    /// so <see cref="ManagedProcess.Pid"/> is the command's own pid. It is ended on disposal.
    /// </summary>
    public ManagedProcess Start(string command, params string[] args) =>
        Start([command, .. args]);

    /// <summary>Starts a long-running command line in the namespace; see <see cref="Start(string, string[])"/>.</summary>
    public ManagedProcess Start(IReadOnlyList<string> commandLine, IReadOnlyDictionary<string, string?>? environment = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(commandLine.Count);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var child = ProcessRunner.Start("ip", ["netns", "exec", Name, .. commandLine], environment);
        lock (_gate)
        {
            _children.Add(child);
        }

        return child;
    }

    /// <summary>
    /// Starts <paramref name="script"/> with <c>sh -c</c> in the namespace. Begin the script's last
    /// command with <c>exec</c> (for example <c>exec busybox nc -l -p 5001 &gt; out</c>) so that ending
    /// the shell's pid ends the command too.
    /// </summary>
    public ManagedProcess StartShell(string script) => Start(["sh", "-c", script]);

    /// <summary>
    /// Waits until a TCP socket in the namespace listens on <paramref name="port"/>. A background
    /// <c>nc -l</c> is not listening the moment it starts, and a connect before that is refused.
    /// </summary>
    /// <exception cref="TimeoutException">Nothing listens on the port within <paramref name="timeout"/>.</exception>
    public async Task WaitForTcpListenerAsync(int port, TimeSpan timeout)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(port);
        var suffix = ":" + port.ToString("X4", System.Globalization.CultureInfo.InvariantCulture);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            // /proc/net is the reader's namespace view, so cat must run inside it.
            var tables = await ExecAsync("cat", "/proc/net/tcp", "/proc/net/tcp6").ConfigureAwait(false);
            var listening = tables.Stdout
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Any(f => f.Length > 3 && f[3] == "0A" && f[1].EndsWith(suffix, StringComparison.OrdinalIgnoreCase));
            if (listening)
            {
                return;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"Nothing listens on TCP port {port} in namespace {Name} after {timeout.TotalSeconds:0.#} s.");
            }

            await Task.Delay(50, TestCancellation.Token).ConfigureAwait(false);
        }
    }

    /// <summary>The pids of all processes in the namespace (<c>ip netns pids</c>).</summary>
    public Task<IReadOnlyList<int>> GetPidsAsync() => GetPidsAsync(TestCancellation.Token);

    private async Task<IReadOnlyList<int>> GetPidsAsync(CancellationToken cancellationToken)
    {
        var result = await ProcessRunner.RunAsync("ip", ["netns", "pids", Name], null, null, cancellationToken).ConfigureAwait(false);
        return result.Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, out var pid) ? pid : 0)
            .Where(pid => pid > 0)
            .ToArray();
    }

    /// <summary>Ends the children started here, then any other process left inside, then deletes the namespace.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        ManagedProcess[] children;
        lock (_gate)
        {
            children = [.. _children];
            _children.Clear();
        }

        await Task.WhenAll(children.Select(c => c.DisposeAsync().AsTask())).ConfigureAwait(false);
        await EndStragglersAsync().ConfigureAwait(false);
        await ProcessRunner.RunAsync("ip", ["netns", "del", Name], null, null, CancellationToken.None).ConfigureAwait(false);
    }

    // Anything still inside was started by this test (the namespace name is unique), for
    // example a QEMU whose QemuGuest was not disposed. Deleting the name alone would leave
    // it running, holding the namespace and its TAP devices.
    private async Task EndStragglersAsync()
    {
        var pids = await GetPidsAsync(CancellationToken.None).ConfigureAwait(false);
        if (pids.Count == 0)
        {
            return;
        }

        foreach (var pid in pids)
        {
            _ = LibC.kill(pid, LibC.SigTerm);
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (DateTime.UtcNow < deadline && (await GetPidsAsync(CancellationToken.None).ConfigureAwait(false)).Count > 0)
        {
            await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
        }

        foreach (var pid in await GetPidsAsync(CancellationToken.None).ConfigureAwait(false))
        {
            _ = LibC.kill(pid, LibC.SigKill);
        }
    }
}
