using System.CommandLine;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using NetWire.Appliance;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices;

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
        var capture = new CaptureCliOptions();
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
            guest, host, status, queue, logLevel,
        };
        foreach (var option in capture.All)
        {
            command.Options.Add(option);
        }

        var gateway = new GatewayCliOptions();
        foreach (var option in gateway.All)
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(guest) ?? $"stream:unix:{DefaultGuestSocket()}",
            parse.GetValue(host) ?? DefaultHost,
            () => gateway.Build(parse),
            () => capture.Read(parse),
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

    private static async Task<int> RunAsync(string guestText, string hostText, Func<NetWire.Stack.GatewayOptions> gatewayOptions, Func<CaptureRequest?> captureOptions, string? statusPath, int queueFrames, LogLevel level, CancellationToken cancellationToken)
    {
        WireSetup setup;
        string? capturePath = null;
        try
        {
            var capture = captureOptions();
            capturePath = capture?.Path;
            setup = ParseWire(guestText, hostText, gatewayOptions, capturePath, statusPath, queueFrames) with { CaptureOptions = capture?.Options ?? new() };
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

        var wire = new WireComponent(setup, loggers);
        int exitCode;
        try
        {
            await wire.StartAsync(stop.Token).ConfigureAwait(false);
            await Task.WhenAny(wire.Completion, Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
            exitCode = await WireExitCodeAsync(wire.Completion, "netwire bridge").ConfigureAwait(false);
            CliLog.Stopping(logger, stop.IsCancellationRequested ? "signal" : "ends finished");
        }
        catch (IOException ex)
        {
            await Console.Error.WriteLineAsync($"netwire bridge: cannot write capture '{capturePath}': {ex.Message}").ConfigureAwait(false);
            exitCode = ExitCodes.Setup;
        }
        finally
        {
            await wire.DisposeAsync().ConfigureAwait(false);
        }

        using var document = JsonDocument.Parse(wire.Status("stopped"));
        await Console.Error.WriteAsync(StatusReport.ToTable(document.RootElement)).ConfigureAwait(false);
        return exitCode;
    }

    /// <summary>Parses and checks the wire options shared by bridge and serve; throws <see cref="FormatException"/>.</summary>
    internal static WireSetup ParseWire(string guestText, string hostText, Func<NetWire.Stack.GatewayOptions> gatewayOptions, string? capturePath, string? statusPath, int queueFrames)
    {
        var guest = WireSpec.Parse(guestText, WireSide.Guest);
        var host = hostText == "gateway" ? null : WireSpec.Parse(hostText, WireSide.Host);
        var gateway = host is null ? gatewayOptions() : null;
        if (queueFrames < 1)
        {
            throw new FormatException("--queue-frames must be at least 1");
        }

        return new WireSetup(guest, host, gateway, capturePath, statusPath, queueFrames);
    }

    /// <summary>
    /// The exit code for a wire that stopped: 0 when it was stopped or its ends finished, 3 when
    /// a device could not be set up, 1 when it failed while running; the reason goes to stderr.
    /// </summary>
    internal static async Task<int> WireExitCodeAsync(Task completion, string who)
    {
        if (!completion.IsCompleted)
        {
            return ExitCodes.Ok;
        }

        try
        {
            await completion.ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Ok;
        }
        catch (Exception ex) when (ex is WireSetupException or NetWireVersionException)
        {
            await Console.Error.WriteLineAsync($"{who}: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Setup;
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex))
        {
            await Console.Error.WriteLineAsync($"{who}: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }
}
