using System.Diagnostics;
using System.Text;

namespace NetWire.Testing;

/// <summary>
/// A real Linux guest (the image from tools/guest/build-image.sh) booted in QEMU under TCG, with one
/// NIC on a caller-chosen <c>-netdev</c> backend. Its serial console is captured line by line; its
/// /init prints <c>NW:</c> markers there (<c>NW:NET addr</c>, <c>NW:TEST_EXIT code</c>, <c>NW:DONE</c>)
/// and powers off. Disposal ends QEMU by pid and deletes the temporary initrd.
/// </summary>
public sealed class QemuGuest : IAsyncDisposable
{
    private const string MarkerPrefix = "NW:";

    private readonly ManagedProcess _qemu;
    private readonly string _tempDir;
    private int _disposed;

    private QemuGuest(ManagedProcess qemu, string tempDir, IReadOnlyList<string> commandLine, string? initrd)
    {
        _qemu = qemu;
        _tempDir = tempDir;
        CommandLine = commandLine;
        Initrd = initrd;
    }

    /// <summary>The initrd QEMU booted (with the test script appended), null for a guest booted from the network; valid until disposal.</summary>
    public string? Initrd { get; }

    /// <summary>QEMU's pid (also under <c>ip netns exec</c>, which execs QEMU).</summary>
    public int Pid => _qemu.Pid;

    /// <summary>The full command line that was started, for messages.</summary>
    public IReadOnlyList<string> CommandLine { get; }

    /// <summary>True once QEMU has exited.</summary>
    public bool HasExited => _qemu.HasExited;

    /// <summary>Time since QEMU was started.</summary>
    public TimeSpan Elapsed => _qemu.Elapsed;

    /// <summary>A snapshot of the serial console lines so far.</summary>
    public IReadOnlyList<string> SerialLines => _qemu.StdoutLines;

    /// <summary>The serial console so far, one line per line.</summary>
    public string SerialLog => string.Join('\n', _qemu.StdoutLines);

    /// <summary>Serial console and QEMU's stderr so far, timestamped, for failure messages.</summary>
    public string DiagnosticLog => _qemu.FormattedOutput;

    /// <summary>Boots a guest. Throws when the image is missing or QEMU cannot be started.</summary>
    public static QemuGuest Start(QemuGuestOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.NetBoot)
        {
            return StartNetBoot(options);
        }

        var guestDir = options.GuestDir ?? RepoPaths.GuestDir;
        var kernel = options.Kernel ?? DefaultKernel(guestDir);
        var initramfs = Path.Combine(guestDir, "initramfs.cpio.gz");
        foreach (var file in new[] { kernel, initramfs })
        {
            if (!File.Exists(file))
            {
                throw new FileNotFoundException($"Guest image file {file} is missing; run tools/guest/build-image.sh.", file);
            }
        }

        var netdev = WithNetdevId(options.Netdev);
        var tempDir = Directory.CreateTempSubdirectory("nwguest-").FullName;
        try
        {
            var initrd = options.Initrd ?? initramfs;
            if (options.TestScript is not null && options.Initrd is null)
            {
                initrd = Path.Combine(tempDir, "initrd.img");
                BuildInitrd(initramfs, options.TestScript, tempDir, initrd);
            }

            // no_timer_check: under TCG on a busy host the kernel's check that the 8254 timer
            // ticks through the IO-APIC can miss its window and panic the guest at boot.
            List<string> qemuArgs =
            [
                "-machine", "pc", "-accel", "tcg", "-m", $"{options.MemoryMiB}M",
                "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                "-kernel", kernel, "-initrd", initrd,
                "-append", $"console=ttyS0 panic=-1 quiet no_timer_check {options.KernelArgs}".TrimEnd(),
                "-netdev", netdev,
                "-device", $"{options.NicModel},netdev=n0,mac={options.Mac},romfile=",
                .. options.ExtraQemuArgs,
            ];
            if (options.QmpSocket is not null)
            {
                qemuArgs.AddRange(["-qmp", $"unix:{options.QmpSocket},server=on,wait=off"]);
            }

            if (options.Incoming is not null)
            {
                qemuArgs.AddRange(["-incoming", options.Incoming, "-S"]);
            }

            // QEMU's stdin is a pipe kept open by ManagedProcess: with -serial stdio QEMU would
            // otherwise put an inherited terminal into raw mode.
            var qemu = options.NetnsName is null
                ? ProcessRunner.Start(options.QemuBinary, qemuArgs)
                : ProcessRunner.Start("ip", ["netns", "exec", options.NetnsName, options.QemuBinary, .. qemuArgs]);
            List<string> commandLine = options.NetnsName is null
                ? [options.QemuBinary, .. qemuArgs]
                : ["ip", "netns", "exec", options.NetnsName, options.QemuBinary, .. qemuArgs];
            return new QemuGuest(qemu, tempDir, commandLine, initrd);
        }
        catch
        {
            DeleteQuietly(tempDir);
            throw;
        }
    }

    /// <summary>
    /// Writes the guest's initramfs with <paramref name="testScript"/> as its <c>/test.sh</c> to
    /// <paramref name="destination"/>, for a guest that loads it over the network.
    /// </summary>
    public static void WriteInitrd(string testScript, string destination, string? guestDir = null)
    {
        var tempDir = Directory.CreateTempSubdirectory("nwinitrd-").FullName;
        try
        {
            BuildInitrd(Path.Combine(guestDir ?? RepoPaths.GuestDir, "initramfs.cpio.gz"), testScript, tempDir, destination);
        }
        finally
        {
            DeleteQuietly(tempDir);
        }
    }

    private static QemuGuest StartNetBoot(QemuGuestOptions options)
    {
        var netdev = WithNetdevId(options.Netdev);
        var tempDir = Directory.CreateTempSubdirectory("nwguest-").FullName;
        List<string> qemuArgs =
        [
            "-machine", "pc", "-accel", "tcg", "-m", $"{options.MemoryMiB}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "std", "-serial", "stdio", "-no-reboot",
            "-boot", "n",
            "-netdev", netdev,
            "-device", $"{options.NicModel},netdev=n0,mac={options.Mac}",
            .. options.ExtraQemuArgs,
        ];
        try
        {
            var qemu = options.NetnsName is null
                ? ProcessRunner.Start(options.QemuBinary, qemuArgs)
                : ProcessRunner.Start("ip", ["netns", "exec", options.NetnsName, options.QemuBinary, .. qemuArgs]);
            return new QemuGuest(qemu, tempDir, [options.QemuBinary, .. qemuArgs], initrd: null);
        }
        catch
        {
            DeleteQuietly(tempDir);
            throw;
        }
    }

    /// <summary>
    /// Waits for the first serial line with marker <c>NW:<paramref name="name"/></c> and returns the text after it
    /// (trimmed; empty for a bare marker). <c>NET</c> does not match <c>NW:NET_FAIL</c>.
    /// </summary>
    /// <exception cref="TimeoutException">No such marker within <paramref name="timeout"/>; the message has the serial log.</exception>
    /// <exception cref="InvalidOperationException">QEMU exited first; the message has the serial log.</exception>
    public async Task<string> WaitForMarkerAsync(string name, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        string line;
        try
        {
            line = await _qemu.WaitForLineAsync(l => TryParseMarker(l, name, out _), timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"Guest printed no {MarkerPrefix}{name} within {timeout.TotalSeconds:0.#} s (QEMU pid {Pid}, {Elapsed.TotalSeconds:0.0} s since start).{Environment.NewLine}{DiagnosticLog}");
        }
        catch (InvalidOperationException)
        {
            throw new InvalidOperationException(
                $"QEMU exited with {_qemu.ExitCode} before the guest printed {MarkerPrefix}{name}.{Environment.NewLine}{DiagnosticLog}");
        }

        TryParseMarker(line, name, out var text);
        return text;
    }

    /// <summary>Waits for <c>NW:TEST_EXIT</c> and returns the exit status of the guest's /test.sh.</summary>
    public async Task<int> WaitForTestExitAsync(TimeSpan timeout)
    {
        var text = await WaitForMarkerAsync("TEST_EXIT", timeout).ConfigureAwait(false);
        return int.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Waits for QEMU to exit (the guest powers off after <c>NW:DONE</c>) and returns its exit status.</summary>
    /// <exception cref="TimeoutException">QEMU still runs after <paramref name="timeout"/>; the message has the serial log.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            return await _qemu.WaitForExitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"QEMU (pid {Pid}) still runs after {timeout.TotalSeconds:0.#} s.{Environment.NewLine}{DiagnosticLog}");
        }
    }

    /// <summary>Ends QEMU by pid if it still runs (SIGTERM, 5 s, SIGKILL) and deletes the temporary files.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _qemu.DisposeAsync().ConfigureAwait(false);
        DeleteQuietly(_tempDir);
    }

    /// <summary>
    /// True when <paramref name="line"/> is marker <c>NW:<paramref name="name"/></c>, alone or followed by a space and
    /// text; <paramref name="text"/> is that text, trimmed.
    /// </summary>
    /// <remarks>
    /// The marker must start the line (leading blanks and control characters aside): under
    /// <c>nw.trace=1</c> the shell also echoes <c>+ echo 'NW:NAME ...'</c>, which must not count.
    /// </remarks>
    public static bool TryParseMarker(string line, string name, out string text)
    {
        ArgumentNullException.ThrowIfNull(line);
        var body = line.AsSpan().TrimStart(" \t\r\0");
        var token = MarkerPrefix + name;
        if (body.StartsWith(token, StringComparison.Ordinal) && (body.Length == token.Length || body[token.Length] == ' '))
        {
            text = body[token.Length..].Trim().ToString();
            return true;
        }

        text = "";
        return false;
    }

    private static string DefaultKernel(string guestDir)
    {
        var uncompressed = Path.Combine(guestDir, "vmlinux");
        return File.Exists(uncompressed) ? uncompressed : Path.Combine(guestDir, "vmlinuz");
    }

    private static string WithNetdevId(string netdev)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(netdev);
        var parts = netdev.Split(',');
        var id = parts.FirstOrDefault(p => p.StartsWith("id=", StringComparison.Ordinal));
        if (id is null)
        {
            return string.Join(',', [parts[0], "id=n0", .. parts.Skip(1)]);
        }

        if (id != "id=n0")
        {
            throw new ArgumentException($"The -netdev value must use id=n0 (the NIC is wired to it), not {id}: {netdev}", nameof(netdev));
        }

        return netdev;
    }

    // The kernel unpacks every archive concatenated in the initrd, later files overriding
    // earlier ones. It looks for the next archive only at a 4-byte aligned offset, so the
    // gzip'ed base is padded with zeros, which it skips.
    private static void BuildInitrd(string baseInitramfs, string testScript, string tempDir, string initrd)
    {
        var rootDir = Path.Combine(tempDir, "root");
        Directory.CreateDirectory(rootDir);
        var script = Path.Combine(rootDir, "test.sh");
        File.WriteAllText(script, testScript.ReplaceLineEndings("\n"), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
        if (OperatingSystem.IsLinux())
        {
            // /init runs it with `sh /test.sh`; the mode only helps a script that calls itself.
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        var extra = Path.Combine(tempDir, "test.cpio");
        RunCpio(rootDir, extra);

        using var output = File.Create(initrd);
        using (var input = File.OpenRead(baseInitramfs))
        {
            input.CopyTo(output);
        }

        var padding = (int)((4 - (output.Length % 4)) % 4);
        output.Write(new byte[padding]);
        using (var input = File.OpenRead(extra))
        {
            input.CopyTo(output);
        }
    }

    // Start is synchronous, and cpio over one small file takes milliseconds, so this waits
    // in place instead of going through the async ProcessRunner.
    private static void RunCpio(string workDir, string archive)
    {
        var psi = new ProcessStartInfo("cpio")
        {
            WorkingDirectory = workDir,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in new[] { "-o", "-H", "newc", "-R", "0:0", "--quiet", "-O", archive })
        {
            psi.ArgumentList.Add(arg);
        }

        using var cpio = StartCpio(psi);
        var stderr = cpio.StandardError.ReadToEndAsync();
        cpio.StandardInput.Write("test.sh\n");
        cpio.StandardInput.Close();
        if (!cpio.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            ProcessRunner.KillByPid(cpio);
            throw new TimeoutException("cpio did not finish within 30 s.");
        }

        if (cpio.ExitCode != 0)
        {
            throw new InvalidOperationException($"cpio -o -H newc exited with {cpio.ExitCode}: {stderr.GetAwaiter().GetResult()}");
        }
    }

    private static Process StartCpio(ProcessStartInfo psi)
    {
        try
        {
            return Process.Start(psi) ?? throw new InvalidOperationException("Cannot start cpio.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"Cannot start cpio (apt-get install cpio): {e.Message}", e);
        }
    }

    private static void DeleteQuietly(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a leftover folder in /tmp must not turn a passing test into a failure.
        }
        catch (UnauthorizedAccessException)
        {
            // Same as above.
        }
    }
}
