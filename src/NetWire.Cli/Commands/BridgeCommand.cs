using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Metrics;
using NetWire.Core.Taps;
using NetWire.Core.Wire;
using NetWire.Devices;
using NetWire.Devices.Qemu;

namespace NetWire.Cli.Commands;

/// <summary><c>netwire bridge</c>: one guest end wired to one host end.</summary>
internal static class BridgeCommand
{
    /// <summary>The TAP bridged to when no --host is given.</summary>
    public const string DefaultHost = "tap:netwire0";

    public static Command Create()
    {
        var guest = new Option<string>("--guest")
        {
            Description = $"Where the guest NIC attaches: {WireSpec.GuestForms}. Default: stream:unix:{DefaultGuestSocket()}",
            HelpName = "SPEC",
        };
        var host = new Option<string>("--host")
        {
            Description = $"Where guest frames go: {WireSpec.HostForms} | gateway (the user-mode gateway; no root). Default: {DefaultHost} (needs root or CAP_NET_ADMIN)",
            HelpName = "SPEC",
        };
        var capture = new Option<string?>("--capture")
        {
            Description = "Record every frame crossing the wire, with its direction, to a pcapng file ('-' for standard output)",
            HelpName = "FILE",
        };
        var status = new Option<string?>("--status-file")
        {
            Description = "Keep the counters as JSON in this file (rewritten every second and at exit); read it with 'netwire status'",
            HelpName = "FILE",
        };
        var queue = new Option<int>("--queue-frames")
        {
            Description = "Frames each end may hold queued before the other side is paused",
            DefaultValueFactory = _ => WireEnd.DefaultQueueCapacity,
            HelpName = "N",
        };
        var logLevel = LogLevelOption();
        var command = new Command("bridge", "Bridge a guest NIC (QEMU stream or dgram backend) to a host TAP or libpcap device, with flow control: a full end pauses the other, and every drop is counted.")
        {
            guest, host, capture, status, queue, logLevel,
        };
        var gateway = new GatewayCliOptions();
        foreach (var option in gateway.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(guest) ?? $"stream:unix:{DefaultGuestSocket()}",
            parse.GetValue(host) ?? DefaultHost,
            () => gateway.Build(parse),
            parse.GetValue(capture),
            parse.GetValue(status),
            parse.GetValue(queue),
            parse.GetValue(logLevel),
            cancellationToken));
        return command;
    }

    internal static Option<LogLevel> LogLevelOption() => new("--log-level")
    {
        Description = "Trace, Debug, Information, Warning, Error",
        DefaultValueFactory = _ => LogLevel.Information,
    };

    /// <summary>/run/netwire/netwire.sock for root, else the user's runtime directory.</summary>
    public static string DefaultGuestSocket()
    {
        if (Environment.UserName == "root" || Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is not { Length: > 0 })
        {
            return Environment.UserName == "root" ? "/run/netwire/netwire.sock" : Path.Combine(Path.GetTempPath(), $"netwire-{Environment.UserName}.sock");
        }

        return Path.Combine(Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR")!, "netwire.sock");
    }

    private static async Task<int> RunAsync(string guestText, string hostText, Func<NetWire.Stack.GatewayOptions> gatewayOptions, string? capturePath, string? statusPath, int queueFrames, LogLevel level, CancellationToken cancellationToken)
    {
        WireSpec guestSpec;
        WireSpec? hostSpec = null;
        NetWire.Stack.GatewayOptions? gateway = null;
        try
        {
            guestSpec = WireSpec.Parse(guestText, WireSide.Guest);
            if (hostText == "gateway")
            {
                gateway = gatewayOptions();
            }
            else
            {
                hostSpec = WireSpec.Parse(hostText, WireSide.Host);
            }

            if (queueFrames < 1)
            {
                throw new FormatException("--queue-frames must be at least 1");
            }
        }
        catch (FormatException ex)
        {
            await Console.Error.WriteLineAsync($"netwire bridge: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        using var loggers = Logging.Create(level);
        var logger = loggers.CreateLogger("NetWire.Bridge");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);

        EnsureSocketDirectory(guestSpec);
        PcapNgWriter? capture = null;
        var guestEnd = guestSpec.CreateEnd("guest", FramePool.Shared, queueFrames, loggers);
        var hostEnd = hostSpec is not null
            ? hostSpec.CreateEnd("host", FramePool.Shared, queueFrames, loggers)
            : new NetWire.Stack.GatewayEnd("host", gateway!, FramePool.Shared, queueFrames, TimeProvider.System, loggers.CreateLogger<NetWire.Stack.GatewayEnd>());
        WireEnd[] ends = [guestEnd, hostEnd];
        using var metrics = new WireMetrics();
        metrics.Register(guestEnd);
        metrics.Register(hostEnd);
        var exitCode = ExitCodes.Ok;
        try
        {
            if (capturePath is not null)
            {
                try
                {
                    capture = PcapNgWriter.Create(capturePath);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    await Console.Error.WriteLineAsync($"netwire bridge: cannot write capture '{capturePath}': {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Setup;
                }

                CliLog.Capturing(logger, capturePath);
            }

            var link = new Link(guestEnd, hostEnd, capture, loggers.CreateLogger<Link>());
            CliLog.BridgeUp(logger, guestEnd.Description, hostEnd.Description);
            var running = link.RunAsync(stop.Token);
            await AnnounceAsync(guestEnd, logger).ConfigureAwait(false);
            using var ticker = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
            var ticks = 0;
            while (!running.IsCompleted)
            {
                var tick = ticker.WaitForNextTickAsync(CancellationToken.None).AsTask();
                await Task.WhenAny(running, tick).ConfigureAwait(false);
                capture?.Flush();
                if (statusPath is not null && ++ticks % 4 == 0)
                {
                    StatusReport.WriteAtomically(statusPath, StatusReport.ToJson(ends, capture, capturePath, "running"));
                }
            }

            await running.ConfigureAwait(false);
            CliLog.Stopping(logger, cancellationToken.IsCancellationRequested || stop.IsCancellationRequested ? "signal" : "ends finished");
        }
        catch (WireSetupException ex)
        {
            await Console.Error.WriteLineAsync($"netwire bridge: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Setup;
        }
        catch (NetWireVersionException ex)
        {
            await Console.Error.WriteLineAsync($"netwire bridge: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Setup;
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException)
        {
            await Console.Error.WriteLineAsync($"netwire bridge: {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Failure;
        }
        finally
        {
            await guestEnd.DisposeAsync().ConfigureAwait(false);
            await hostEnd.DisposeAsync().ConfigureAwait(false);
            capture?.Dispose();
        }

        var final = StatusReport.ToJson(ends, capture, capturePath, "stopped");
        if (statusPath is not null)
        {
            StatusReport.WriteAtomically(statusPath, final);
        }

        using var document = JsonDocument.Parse(final);
        await Console.Error.WriteAsync(StatusReport.ToTable(document.RootElement)).ConfigureAwait(false);
        return exitCode;
    }

    private static async Task AnnounceAsync(WireEnd guest, ILogger logger)
    {
        switch (guest)
        {
            case QemuStreamEnd stream:
                await Task.WhenAny(stream.Ready, Task.Delay(2000)).ConfigureAwait(false);
                CliLog.QemuHint(logger, stream.QemuNetdev());
                break;
            case QemuDgramEnd dgram:
                CliLog.QemuHint(logger, dgram.QemuNetdev());
                break;
        }
    }

    private static void EnsureSocketDirectory(WireSpec spec)
    {
        if (spec.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint unix && !spec.Connect)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(unix.ToString()!));
            if (dir is "/run/netwire" && !Directory.Exists(dir))
            {
                Directory.CreateDirectory(dir);
            }
        }
    }
}
