using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Stack;
using NetWire.Core.Net;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire run [gateway options] -- COMMAND</c>: COMMAND runs in a new network namespace
/// whose only interface (besides lo) is <c>tap0</c>, attached to the user-mode gateway, as
/// <c>pasta</c> and <c>slirp4netns</c> do.
/// </summary>
/// <remarks>
/// How this works (needs root): <c>ip netns add netwire-PID</c>; the appliance opens a TAP
/// <c>nwrPID</c> in its own namespace (so its fd stays with the appliance), moves it into the new
/// namespace and renames it <c>tap0</c> (a TAP keeps working across the move); inside, tap0 gets
/// the MTU, the address .100 of the guest network, a default route via the gateway, and lo comes
/// up; with IPv6 also ::100 of the IPv6 prefix (without duplicate address detection, so it is
/// usable at once; the gateway never claims it) and a default route via the IPv6 gateway, with
/// router advertisements not accepted on tap0 (they would add a second, SLAAC address beside
/// ::100); with <c>--no-ipv6</c> IPv6 is off on tap0. <c>/etc/netns/NAME/resolv.conf</c> points at
/// the gateway's DNS addresses. COMMAND runs with
/// <c>ip netns exec</c> as a child. The appliance stays in the foreground until COMMAND exits
/// (its exit status is returned) or SIGTERM/SIGINT (COMMAND gets SIGTERM by pid); the namespace
/// and the resolv.conf directory are removed on the way out.
/// </remarks>
internal static class RunCommand
{
    public static Command Create()
    {
        var gateway = new GatewayCliOptions();
        var capture = new CaptureCliOptions();
        var commandLine = new Argument<string[]>("COMMAND")
        {
            Description = "The command to run in the namespace (put it after --)",
            Arity = ArgumentArity.OneOrMore,
        };
        var status = new Option<string?>("--status-file")
        {
            Description = "Keep the counters (the TAP's and the gateway's) as JSON in this file (rewritten every second and at exit); read it with 'netwire status'",
            HelpName = "FILE",
        };
        var logLevel = BridgeCommand.LogLevelOption();
        logLevel.DefaultValueFactory = _ => LogLevel.Warning;
        var command = new Command("run", "Run COMMAND in a new network namespace whose TAP is attached to the user-mode gateway (needs root).");
        foreach (var option in gateway.All)
        {
            command.Options.Add(option);
        }

        foreach (var option in capture.All)
        {
            command.Options.Add(option);
        }

        command.Options.Add(status);
        command.Options.Add(logLevel);
        command.Arguments.Add(commandLine);
        command.SetAction((parse, cancellationToken) =>
        {
            GatewayOptions options;
            CaptureRequest? captureRequest;
            try
            {
                options = gateway.Build(parse);
                captureRequest = capture.Read(parse);
            }
            catch (FormatException ex)
            {
                Console.Error.WriteLine($"netwire run: {ex.Message}");
                return Task.FromResult(ExitCodes.Usage);
            }

            return RunAsync(options, captureRequest, parse.GetValue(status), parse.GetValue(commandLine)!, parse.GetValue(logLevel), cancellationToken);
        });
        return command;
    }

    private static async Task<int> RunAsync(GatewayOptions options, CaptureRequest? captureRequest, string? statusPath, string[] commandLine, LogLevel level, CancellationToken cancellationToken)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            await Console.Error.WriteLineAsync("netwire run: needs root (it creates a network namespace and a TAP)").ConfigureAwait(false);
            return ExitCodes.Setup;
        }

        using var loggers = Logging.Create(level);
        var logger = loggers.CreateLogger("NetWire.Run");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);

        var pid = Environment.ProcessId;
        var ns = $"netwire-{pid}";
        var tap = $"nwr{pid}";
        var etc = $"/etc/netns/{ns}";
        var guestAddress = Ip.Format(options.Network.Network + 100);
        var guestAddress6 = options.Ipv6Enabled ? options.Network6.HostAt(0x100).ToIPAddress() : null;
        await using var tapEnd = new TapEnd("ns", tap, FramePool.Shared, WireEnd.DefaultQueueCapacity, loggers.CreateLogger<TapEnd>());
        await using var gatewayEnd = new GatewayEnd("gateway", options, FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, loggers.CreateLogger<GatewayEnd>());

        // The gateway's poller reads the TAP: a guest frame and a host socket's readiness wake one
        // thread (docs/performance.md, "Connection setup: one thread for the TAP and the host sockets").
        tapEnd.InputLoop = gatewayEnd;
        using var linkStop = new CancellationTokenSource();
        Task? running = null;
        Task statusLoop = Task.CompletedTask;
        NetWire.Core.Taps.PcapNgWriter? capture = null;
        var exitCode = ExitCodes.Failure;
        try
        {
            capture = captureRequest?.Open();
            await IpAsync("netns", "add", ns).ConfigureAwait(false);
            var link = new Link(tapEnd, gatewayEnd, capture, loggers.CreateLogger<Link>());
            running = link.RunAsync(linkStop.Token);
            if (statusPath is not null)
            {
                statusLoop = WriteStatusAsync(statusPath, [tapEnd, gatewayEnd], capture, captureRequest?.Path, logger, linkStop.Token);
            }

            await WaitForTapAsync(tap, running).ConfigureAwait(false);
            await IpAsync("link", "set", tap, "netns", ns).ConfigureAwait(false);
            await IpAsync("-n", ns, "link", "set", tap, "name", "tap0").ConfigureAwait(false);

            // Before the link comes up, so its first router solicitation already finds them. A
            // kernel without IPv6 (ipv6.disable=1) has neither, and tap0 gets IPv4 only.
            if (!Directory.Exists("/proc/sys/net/ipv6"))
            {
                RunLog.NoIpv6(logger);
                guestAddress6 = null;
            }
            else
            {
                await SetSysctlAsync(ns, guestAddress6 is null ? "net/ipv6/conf/tap0/disable_ipv6" : "net/ipv6/conf/tap0/accept_ra", guestAddress6 is null ? "1" : "0").ConfigureAwait(false);
            }

            await IpAsync("-n", ns, "link", "set", "tap0", "mtu", options.Mtu.ToString(System.Globalization.CultureInfo.InvariantCulture), "up").ConfigureAwait(false);
            await IpAsync("-n", ns, "link", "set", "lo", "up").ConfigureAwait(false);
            await IpAsync("-n", ns, "addr", "add", $"{guestAddress}/{options.Network.PrefixLength}", "dev", "tap0").ConfigureAwait(false);
            await IpAsync("-n", ns, "route", "add", "default", "via", options.GatewayIp.ToString(), "dev", "tap0").ConfigureAwait(false);
            var resolvers = $"nameserver {options.DnsIp}\n";
            if (guestAddress6 is not null)
            {
                await IpAsync("-n", ns, "-6", "addr", "add", $"{guestAddress6}/{options.Network6.PrefixLength}", "dev", "tap0", "nodad").ConfigureAwait(false);
                await IpAsync("-n", ns, "-6", "route", "add", "default", "via", options.GatewayIp6.ToString(), "dev", "tap0").ConfigureAwait(false);
                resolvers += $"nameserver {options.DnsIp6}\n";
            }

            gatewayEnd.AssumeGuest(System.Net.IPAddress.Parse(guestAddress), guestAddress6, await ReadMacAsync(ns).ConfigureAwait(false));
            Directory.CreateDirectory(etc);
            await File.WriteAllTextAsync(Path.Combine(etc, "resolv.conf"), resolvers, CancellationToken.None).ConfigureAwait(false);

            // With the capture on standard output, the command's output goes to standard error so the pcapng stays whole.
            var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = captureRequest?.Path == "-" };
            foreach (var arg in (string[])["netns", "exec", ns, .. commandLine])
            {
                start.ArgumentList.Add(arg);
            }

            using var child = Process.Start(start) ?? throw new WireSetupException("cannot start the command");
            var relay = start.RedirectStandardOutput ? child.StandardOutput.BaseStream.CopyToAsync(Console.OpenStandardError(), CancellationToken.None) : Task.CompletedTask;
            var exited = child.WaitForExitAsync(CancellationToken.None);
            await Task.WhenAny(exited, running, Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
            if (!exited.IsCompleted)
            {
                // SIGTERM to our own child, by pid.
                _ = Kill(child.Id, 15);
                await exited.ConfigureAwait(false);
                exitCode = stop.IsCancellationRequested ? ExitCodes.Ok : ExitCodes.Failure;
            }
            else
            {
                exitCode = child.ExitCode;

                // Ctrl-C in a terminal signals the whole process group: the command may die of the
                // same SIGINT (or SIGTERM) that stops NetWire, a moment before our handler runs.
                // That is a requested stop, not the command failing.
                if (exitCode is 128 + 2 or 128 + 15)
                {
                    await Task.WhenAny(Task.Delay(500, CancellationToken.None), Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
                    if (stop.IsCancellationRequested)
                    {
                        exitCode = ExitCodes.Ok;
                    }
                }
            }

            await relay.ConfigureAwait(false);
        }
        catch (WireSetupException ex)
        {
            await Console.Error.WriteLineAsync($"netwire run: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Setup;
        }
        finally
        {
            await linkStop.CancelAsync().ConfigureAwait(false);
            if (running is not null)
            {
                try
                {
                    await running.ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is WireSetupException || NetWire.Core.Net.IoErrors.IsIoFailure(ex))
                {
                    RunLog.LinkFailed(logger, ex.Message);
                }
            }

            await statusLoop.ConfigureAwait(false);
            capture?.Dispose();
            if (statusPath is not null)
            {
                _ = WriteStatus(statusPath, [tapEnd, gatewayEnd], capture, captureRequest?.Path, "stopped", logger);
            }

            await RunQuietAsync("ip", false, "netns", "del", ns).ConfigureAwait(false);
            try
            {
                Directory.Delete(etc, recursive: true);
            }
            catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsFileError(ex))
            {
            }
        }

        return exitCode;
    }

    /// <summary>Rewrites the status file every second until <paramref name="cancellationToken"/> (docs/cli.md, status file).</summary>
    private static async Task WriteStatusAsync(string path, WireEnd[] ends, NetWire.Core.Taps.PcapNgWriter? capture, string? capturePath, ILogger logger, CancellationToken cancellationToken)
    {
        using var ticker = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var failing = false;
        try
        {
            while (await ticker.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                // Warned once per run of failures, not every second.
                failing = !WriteStatus(path, ends, capture, capturePath, "running", failing ? null : logger);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One status write; a failed one (a removed folder, a full disk) is a warning, never the end of the run.</summary>
    private static bool WriteStatus(string path, WireEnd[] ends, NetWire.Core.Taps.PcapNgWriter? capture, string? capturePath, string state, ILogger? logger)
    {
        try
        {
            NetWire.Appliance.StatusReport.WriteAtomically(path, NetWire.Appliance.StatusReport.ToJson(ends, capture, capturePath, state));
            return true;
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            if (logger is not null)
            {
                RunLog.StatusWriteFailed(logger, path, ex.Message);
            }

            return false;
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private static async Task WaitForTapAsync(string tap, Task running)
    {
        var flags = $"/sys/class/net/{tap}/flags";
        for (var i = 0; i < 500; i++)
        {
            if (running.IsCompleted)
            {
                await running.ConfigureAwait(false);
                throw new WireSetupException($"the TAP {tap} closed before it was set up");
            }

            // Wait until TapEnd has opened and brought it up, then it can move.
            if (File.Exists(flags) && (Convert.ToInt32((await File.ReadAllTextAsync(flags).ConfigureAwait(false)).Trim(), 16) & 1) != 0)
            {
                return;
            }

            await Task.Delay(10).ConfigureAwait(false);
        }

        throw new WireSetupException($"the TAP {tap} did not come up");
    }

    private static async Task<byte[]> ReadMacAsync(string ns)
    {
        var (code, output) = await RunQuietAsync("ip", true, "-n", ns, "-o", "link", "show", "tap0").ConfigureAwait(false);
        var at = output.IndexOf("link/ether ", StringComparison.Ordinal);
        if (code != 0 || at < 0)
        {
            throw new WireSetupException($"cannot read the MAC of tap0 in {ns}");
        }

        return Convert.FromHexString(output.Substring(at + 11, 17).Replace(":", string.Empty, StringComparison.Ordinal));
    }

    /// <summary>Writes a sysctl of the namespace (<c>net/...</c> under /proc/sys, as seen from inside it).</summary>
    private static async Task SetSysctlAsync(string ns, string key, string value)
    {
        var (code, error) = await RunQuietAsync("ip", false, "netns", "exec", ns, "sh", "-c", $"echo {value} > /proc/sys/{key}").ConfigureAwait(false);
        if (code != 0)
        {
            throw new WireSetupException($"cannot set {key.Replace('/', '.')} = {value} in {ns}: {error.Trim()}");
        }
    }

    private static async Task IpAsync(params string[] args)
    {
        var (code, error) = await RunQuietAsync("ip", false, args).ConfigureAwait(false);
        if (code != 0)
        {
            throw new WireSetupException($"ip {string.Join(' ', args)} failed: {error.Trim()}");
        }
    }

    /// <summary>Runs a helper to completion; returns its exit code and stderr (or stdout when <paramref name="wantStdout"/>).</summary>
    private static async Task<(int Code, string Text)> RunQuietAsync(string file, bool wantStdout, params string[] args)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = await process.StandardOutput.ReadToEndAsync().ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        return (process.ExitCode, wantStdout ? output : await error.ConfigureAwait(false));
    }
}

/// <summary>Log events of <c>netwire run</c>.</summary>
internal static partial class RunLog
{
    [LoggerMessage(5101, LogLevel.Debug, "Gateway link ended with {Reason}")]
    public static partial void LinkFailed(ILogger logger, string reason);

    [LoggerMessage(5102, LogLevel.Warning, "This kernel has no IPv6 (/proc/sys/net/ipv6 is missing): tap0 gets IPv4 only")]
    public static partial void NoIpv6(ILogger logger);

    [LoggerMessage(5103, LogLevel.Warning, "Status file {Path} cannot be written: {Reason}; the run carries on")]
    public static partial void StatusWriteFailed(ILogger logger, string path, string reason);
}
