using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace NetWire.Stack.Tcp;

/// <summary>
/// The network lock of a TCP flow migration (docs/migration.md, "Gateway flows"): while it is
/// held, segments from the host peers of the moving flows are dropped before they reach a
/// socket, so the dumped sockets stop changing and no segment meets a port without a socket
/// (which the kernel would answer with a RST) while the source's socket is gone and the
/// target's is not there yet. A dropped segment is sent again by its peer and taken by the
/// restored socket. CRIU locks the network the same way.
/// </summary>
/// <remarks>
/// How this works: one nftables table per process, <c>inet netwire_PID</c>, with a chain on the
/// input hook (priority raw, before conntrack) that drops TCP segments whose (source, source
/// port, destination, destination port) is in a set, one set per address family. Locking adds
/// the flows' (peer, local) tuples; unlocking empties the sets. Only the input direction is
/// dropped: what the dumped sockets still send is consistent with their dump, and a reset the
/// source sends for a flow the target refused must reach its peer. Commands run in this process
/// through libnftables (the library the <c>nft</c> command is built on, <see cref="Libnftables"/>):
/// a batch is one netlink transaction, well under a millisecond. Where the library cannot be
/// loaded they go to one <c>nft -i</c> process kept for the appliance's life instead (starting
/// it and making the table took 30 ms on a loaded 2-core machine, a lock of 100 flows 11 to 40 ms,
/// as it waits for the other process to be scheduled); each batch then ends with a
/// <c>list table</c> whose closing brace says that everything before it was done. The table is
/// deleted when the lock is disposed; a process killed while locked leaves it (its sets then
/// only match tuples of connections that no longer exist). Needs CAP_NET_ADMIN and nftables.
/// </remarks>
internal sealed class NetworkLock : IDisposable
{
    private static readonly TimeSpan s_commandTimeout = TimeSpan.FromSeconds(10);

    private readonly Lock _gate = new();
    private readonly string _table = "netwire_" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
    private Process? _nft;

    /// <summary>
    /// Descriptors below which libnftables' socket must be. libnftables waits for its netlink
    /// socket with select(), and glibc aborts the whole process for a descriptor at or past
    /// FD_SETSIZE (1,024), which a gateway with a thousand connections reaches: the context (and
    /// its socket, kept for its life) is made when the lock is, at start-up, and only while the
    /// lowest free descriptor is below this; otherwise the nft process is used.
    /// </summary>
    private const int MaxLibraryDescriptor = 512;

    /// <summary>The libnftables context, or null when the library is missing or the nft process is used.</summary>
    private Libnftables? _library;

    /// <summary>The table was made through <see cref="_library"/>.</summary>
    private bool _libraryReady;

    /// <summary>Makes the libnftables context now, while this process has few descriptors.</summary>
    public NetworkLock() => _library = LowestFreeDescriptor() is >= 0 and < MaxLibraryDescriptor ? Libnftables.TryCreate() : null;

    /// <summary>nft's output lines, read by a thread of their own (null: it ended), so a wait for them needs no pool thread.</summary>
    private BlockingCollection<string?>? _output;
    private bool _locked;

    /// <summary>The table this process uses.</summary>
    public string Table => _table;

    /// <summary>True while flows are locked.</summary>
    public bool IsLocked
    {
        get
        {
            lock (_gate)
            {
                return _locked;
            }
        }
    }

    /// <summary>True once <see cref="Prepare"/> succeeded (the table exists).</summary>
    public bool IsPrepared
    {
        get
        {
            lock (_gate)
            {
                return _nft is not null || _libraryReady;
            }
        }
    }

    /// <summary>True when the commands run through libnftables in this process (after <see cref="Prepare"/>).</summary>
    public bool InProcess
    {
        get
        {
            lock (_gate)
            {
                return _libraryReady;
            }
        }
    }

    /// <summary>Loads libnftables (or starts <c>nft</c>) and makes the table (done once; later calls return at once).</summary>
    /// <exception cref="NetworkLockException">No nftables, or it refused (no CAP_NET_ADMIN).</exception>
    public void Prepare()
    {
        lock (_gate)
        {
            if (_nft is not null || _libraryReady)
            {
                return;
            }

            if (_library is not null)
            {
                try
                {
                    Run(TableCommands());
                    _libraryReady = true;
                    return;
                }
                catch
                {
                    _library.Dispose();
                    _library = null;
                    throw;
                }
            }

            var start = new ProcessStartInfo("/bin/sh")
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                StandardInputEncoding = new UTF8Encoding(false),
            };
            start.ArgumentList.Add("-c");

            // One pipe for both streams, so an error line comes before the marker that follows it.
            start.ArgumentList.Add("exec nft -i 2>&1");
            try
            {
                _nft = Process.Start(start) ?? throw new NetworkLockException("cannot start nft");
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                throw new NetworkLockException($"cannot start nft: {ex.Message}", ex);
            }

            var output = new BlockingCollection<string?>();
            var reader = _nft.StandardOutput;
            _output = output;
            new Thread(() => ReadOutput(reader, output)) { IsBackground = true, Name = "nft-output" }.Start();

            try
            {
                Run(TableCommands());
            }
            catch
            {
                StopProcess();
                throw;
            }
        }
    }

    private string[] TableCommands() =>
    [
        $"add table inet {_table}",
        $"add chain inet {_table} moving {{ type filter hook input priority -300; policy accept; }}",
        $"add set inet {_table} moving4 {{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }}",
        $"add set inet {_table} moving6 {{ type ipv6_addr . inet_service . ipv6_addr . inet_service; }}",
        $"add rule inet {_table} moving ip saddr . tcp sport . ip daddr . tcp dport @moving4 drop",
        $"add rule inet {_table} moving ip6 saddr . tcp sport . ip6 daddr . tcp dport @moving6 drop",
    ];

    /// <summary>Drops what the peers of <paramref name="flows"/> send until <see cref="Unlock"/>.</summary>
    /// <exception cref="NetworkLockException">nft refused.</exception>
    public void Lock(IReadOnlyList<(IPEndPoint Local, IPEndPoint Remote)> flows)
    {
        Prepare();
        var v4 = new List<string>();
        var v6 = new List<string>();
        foreach (var (local, remote) in flows)
        {
            var element = $"{remote.Address} . {remote.Port} . {local.Address} . {local.Port}";
            (local.AddressFamily == AddressFamily.InterNetworkV6 ? v6 : v4).Add(element);
        }

        lock (_gate)
        {
            var commands = new List<string>(2);
            if (v4.Count > 0)
            {
                commands.Add($"add element inet {_table} moving4 {{ {string.Join(", ", v4)} }}");
            }

            if (v6.Count > 0)
            {
                commands.Add($"add element inet {_table} moving6 {{ {string.Join(", ", v6)} }}");
            }

            Run([.. commands]);
            _locked = true;
        }
    }

    /// <summary>Lets every locked flow's segments through again.</summary>
    public void Unlock()
    {
        lock (_gate)
        {
            if (!_locked || (_nft is null && !_libraryReady))
            {
                return;
            }

            Run($"flush set inet {_table} moving4", $"flush set inet {_table} moving6");
            _locked = false;
        }
    }

    /// <summary>Deletes the table and ends <c>nft</c> (which runs what it was given before it exits).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_library is { } library)
            {
                if (_libraryReady)
                {
                    try
                    {
                        library.Run($"delete table inet {_table}");
                    }
                    catch (NetworkLockException)
                    {
                        // Best effort on the way out, as with the process.
                    }
                }

                library.Dispose();
                _library = null;
                _libraryReady = false;
            }

            if (_nft is not { } nft)
            {
                return;
            }

            try
            {
                nft.StandardInput.Write($"delete table inet {_table}\n");
                nft.StandardInput.Flush();
            }
            catch (IOException)
            {
                // nft is gone already, and its table may be: best effort on the way out.
            }

            StopProcess();
        }
    }

    private void Run(params string[] commands)
    {
        if (_library is { } library)
        {
            library.Run(string.Join('\n', commands));
            return;
        }

        var nft = _nft ?? throw new NetworkLockException("nft is not running");
        var input = new StringBuilder();
        foreach (var command in commands)
        {
            input.Append(command).Append('\n');
        }

        input.Append("list table inet ").Append(_table).Append('\n');
        try
        {
            nft.StandardInput.Write(input.ToString());
            nft.StandardInput.Flush();
        }
        catch (IOException ex)
        {
            throw new NetworkLockException($"nft went away: {ex.Message}", ex);
        }

        var errors = new StringBuilder();
        var deadline = Stopwatch.StartNew();
        var output = _output!;
        while (true)
        {
            var left = s_commandTimeout - deadline.Elapsed;
            if (left < TimeSpan.Zero || !output.TryTake(out var line, left) || line is null)
            {
                // Its answer may still come, out of step with the next command's: the next lock starts a fresh nft.
                StopProcess();
                throw new NetworkLockException(errors.Length > 0 ? $"nft: {errors}" : $"nft did not answer within {s_commandTimeout.TotalSeconds:0} s");
            }

            if (line == "}")
            {
                break;
            }

            if (line.Contains("Error:", StringComparison.Ordinal))
            {
                errors.Append(line.Trim()).Append(' ');
            }
        }

        if (errors.Length > 0)
        {
            throw new NetworkLockException($"nft: {errors.ToString().Trim()}");
        }
    }

    /// <summary>The descriptor the kernel would hand out next (the lowest free one), or -1.</summary>
    private static int LowestFreeDescriptor()
    {
        try
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            return (int)probe.Handle;
        }
        catch (SocketException)
        {
            return -1;
        }
    }

    private static void ReadOutput(StreamReader reader, BlockingCollection<string?> output)
    {
        try
        {
            while (reader.ReadLine() is { } line)
            {
                output.Add(line);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // nft was stopped.
        }

        output.Add(null);
        output.CompleteAdding();
    }

    private void StopProcess()
    {
        var nft = _nft;
        _nft = null;
        _output = null;
        if (nft is null)
        {
            return;
        }

        try
        {
            nft.StandardInput.Close();
            if (!nft.WaitForExit(2000))
            {
                nft.Kill();
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }

        nft.Dispose();
    }
}

/// <summary>The network lock could not be taken: no nft, or no permission.</summary>
internal sealed class NetworkLockException : Exception
{
    public NetworkLockException()
    {
    }

    public NetworkLockException(string message)
        : base(message)
    {
    }

    public NetworkLockException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
