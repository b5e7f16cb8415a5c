using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Appliance;
using NetWire.Control;
using NetWire.Core.Wire;
using NetWire.Devices;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire serve</c>: parses and checks the appliance's options, then runs the
/// <see cref="ServeAppliance"/> they describe (the wire, the SPICE server, the incoming
/// migration and the QMP control socket) until a signal, <c>quit</c>, or a part failing.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var addr = new Option<string>("--spice-addr")
        {
            Description = "Address the SPICE server listens on",
            DefaultValueFactory = _ => "127.0.0.1",
            HelpName = "A",
        };
        var port = new Option<int?>("--spice-port")
        {
            Description = $"SPICE plaintext TCP port (0: any free port, printed at start); default {SpiceServerOptions.DefaultPort}, or none when only --tls-port is given",
            HelpName = "P",
        };
        var password = new Option<string?>("--password")
        {
            Description = $"SPICE ticket clients must present (at most {TicketAuthority.MaxPasswordBytes} bytes). Visible in the process list: prefer --password-file",
            HelpName = "P",
        };
        var passwordFile = new Option<string?>("--password-file")
        {
            Description = "Read the SPICE password from the first line of this file",
            HelpName = "FILE",
        };
        var expires = new Option<string?>("--password-expires")
        {
            Description = "When the password stops working, as QEMU's expire_password: now, never, +SECONDS, or SECONDS since the epoch",
            HelpName = "WHEN",
        };
        var disable = new Option<bool>("--disable-ticketing")
        {
            Description = "Accept every SPICE client without a password",
        };
        var qmp = new Option<string?>("--qmp")
        {
            Description = "QMP-style control socket: unix:PATH or tcp:ADDRESS:PORT (see docs/control.md)",
            HelpName = "SPEC",
        };
        var tunnelOption = new Option<bool>("--tunnel")
        {
            Description = "Serve the SPICE tunnel channel: services published by 'netwire tunnel-client' get virtual IPs in the gateway's guest network (needs --host gateway)",
        };
        var incoming = new Option<string?>("--incoming")
        {
            Description = "Start as a migration target: wait for the source's appliance state on tcp:ADDRESS:PORT (see docs/migration.md)",
            HelpName = "URI",
        };
        var metrics = new Option<string?>("--metrics-addr")
        {
            Description = "Serve Prometheus metrics at http://ADDR:PORT/metrics (frames, bytes and drops per wire end, gateway, SPICE, migrations, process)",
            HelpName = "ADDR:PORT",
        };
        var guest = new Option<string>("--guest")
        {
            Description = $"Where the guest NIC attaches: {WireSpec.GuestForms} | none (SPICE only). Default: stream:unix:{BridgeCommand.DefaultGuestSocket()}",
            HelpName = "SPEC",
        };
        var host = new Option<string>("--host")
        {
            Description = $"Where guest frames go: gateway (the user-mode gateway, the default; no root) | {WireSpec.HostForms}",
            DefaultValueFactory = _ => "gateway",
            HelpName = "SPEC",
        };
        var capture = new CaptureCliOptions();
        var status = new Option<string?>("--status-file")
        {
            Description = "Keep the wire's counters as JSON in this file (rewritten every second and at exit); read it with 'netwire status'",
            HelpName = "FILE",
        };
        var queue = new Option<int>("--queue-frames")
        {
            Description = "Frames each end may hold queued before the other side is paused",
            DefaultValueFactory = _ => WireEnd.DefaultQueueCapacity,
            HelpName = "N",
        };
        var logLevel = BridgeCommand.LogLevelOption();
        var command = new Command("serve", "Run the NetWire appliance: a guest NIC (QEMU stream or dgram backend) on the user-mode gateway (no root) or a host device, the SPICE server (link with RSA ticket auth, main channel) on --spice-addr:--spice-port, and an optional QMP control socket. Without a password option a random SPICE password is written to a file only you can read.")
        {
            guest, host, status, queue, addr, port, password, passwordFile, expires, disable, qmp, incoming, tunnelOption, metrics, logLevel,
        };
        var gateway = new GatewayCliOptions();
        var tls = new TlsCliOptions();
        foreach (var option in gateway.All.Concat(capture.All).Concat(tls.All))
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, cancellationToken) => RunAsync(
            new ServeArguments(
                parse.GetValue(addr)!,
                () => tls.Read(parse, parse.GetValue(port)),
                parse.GetValue(password),
                parse.GetValue(passwordFile),
                parse.GetValue(expires),
                parse.GetValue(disable),
                parse.GetValue(qmp),
                parse.GetValue(incoming),
                parse.GetValue(tunnelOption),
                parse.GetValue(metrics)),
            parse.GetValue(guest) ?? $"stream:unix:{BridgeCommand.DefaultGuestSocket()}",
            parse.GetValue(host)!,
            () => gateway.Build(parse),
            () => capture.Read(parse),
            parse.GetValue(status),
            parse.GetValue(queue),
            parse.GetValue(logLevel),
            cancellationToken));
        return command;
    }

    /// <summary>
    /// Parses QEMU's expire_password forms: "now", "never", "+N" (seconds from now), "N" (epoch seconds).
    /// </summary>
    public static DateTimeOffset? ParseExpiry(string text, DateTimeOffset now)
    {
        if (text == "never")
        {
            return null;
        }

        if (text == "now")
        {
            return now;
        }

        if (text.StartsWith('+') && long.TryParse(text.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out var relative))
        {
            return now.AddSeconds(relative);
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var absolute))
        {
            return DateTimeOffset.FromUnixTimeSeconds(absolute);
        }

        throw new FormatException($"--password-expires '{text}': use now, never, +SECONDS or SECONDS since the epoch");
    }

    private static async Task<int> RunAsync(ServeArguments args, string guestText, string hostText, Func<NetWire.Stack.GatewayOptions> gatewayOptions, Func<CaptureRequest?> captureOptions, string? statusPath, int queueFrames, LogLevel level, CancellationToken cancellationToken)
    {
        SpiceServerOptions spiceOptions;
        ControlEndpoint? control;
        IPEndPoint? metricsEndPoint;
        WireSetup? wireSetup = null;
        TlsCliOptions.TlsRequest tls;
        var tickets = new TicketAuthority(TimeProvider.System);
        try
        {
            tls = args.Tls();
            var capture = captureOptions();
            var capturePath = capture?.Path;
            if (guestText != "none")
            {
                wireSetup = BridgeCommand.ParseWire(guestText, hostText, gatewayOptions, capturePath, statusPath, queueFrames) with { CaptureOptions = capture?.Options ?? new() };
            }
            else if (capturePath is not null || statusPath is not null)
            {
                throw new FormatException("--capture and --status-file need a wire: drop --guest none");
            }

            TunnelServe.Check(args.Tunnel, wireSetup);
            spiceOptions = BuildSpiceOptions(args, tickets, tls);
            control = args.Qmp is null ? null : ControlEndpoint.Parse(args.Qmp);
            if (args.Incoming is { } incomingText)
            {
                _ = NetWire.Control.Migration.MigrationWire.ParseIncoming(incomingText);
            }

            metricsEndPoint = args.MetricsAddr is { } metricsText ? ParseMetricsAddr(metricsText) : null;
        }
        catch (Exception ex) when (ExitCodes.IsBadOption(ex))
        {
            await Console.Error.WriteLineAsync($"netwire serve: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        // Certificates are checked before anything listens: an expired or mismatched one is a
        // setup failure naming the file (exit 3), as QEMU refuses to start with one.
        NetWire.Control.Migration.MigrationTls? migrationTls;
        try
        {
            var now = DateTimeOffset.UtcNow;
            spiceOptions.Tls = tls.LoadSpice(now);
            migrationTls = tls.LoadMigration(args.Incoming is not null, now);
        }
        catch (NetWire.Core.Tls.TlsCredentialsException ex)
        {
            await Console.Error.WriteLineAsync($"netwire serve: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Setup;
        }

        using var loggers = Logging.Create(level);
        var logger = loggers.CreateLogger("NetWire.Serve");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);
        if (args.GeneratedPasswordFile is { } generated)
        {
            CliLog.GeneratedPassword(logger, generated);
        }

        var setup = new ServeSetup(wireSetup, spiceOptions, tickets) { Control = control, Incoming = args.Incoming, Tunnel = args.Tunnel, MigrationTls = migrationTls, Metrics = metricsEndPoint };
        var appliance = new ServeAppliance(setup, loggers, stop);
        var exitCode = ExitCodes.Ok;
        try
        {
            if (await appliance.StartAsync(stop.Token).ConfigureAwait(false) is { } failure)
            {
                await Console.Error.WriteLineAsync($"netwire serve: {failure}").ConfigureAwait(false);
                return ExitCodes.Setup;
            }

            if (await appliance.RunAsync(stop.Token).ConfigureAwait(false))
            {
                // A wire whose guest or host end could not be opened says why (exit 3); any other
                // component stopping on its own is a failure.
                exitCode = appliance.Wire is { Completion.IsCompleted: true } ended
                    ? await BridgeCommand.WireExitCodeAsync(ended.Completion, "netwire serve").ConfigureAwait(false)
                    : ExitCodes.Ok;
                if (exitCode == ExitCodes.Ok)
                {
                    exitCode = ExitCodes.Failure;
                }
            }

            CliLog.Stopping(logger, stop.IsCancellationRequested ? "signal" : "a component stopped");
        }
        finally
        {
            await appliance.DisposeAsync().ConfigureAwait(false);
        }

        if (appliance.Wire is { } wire)
        {
            using var document = System.Text.Json.JsonDocument.Parse(wire.Status("stopped"));
            await Console.Error.WriteAsync(StatusReport.ToTable(document.RootElement)).ConfigureAwait(false);
        }

        return exitCode;
    }

    private static SpiceServerOptions BuildSpiceOptions(ServeArguments args, TicketAuthority tickets, TlsCliOptions.TlsRequest tls)
    {
        if (!IPAddress.TryParse(args.SpiceAddr, out var address))
        {
            throw new FormatException($"--spice-addr '{args.SpiceAddr}' is not an IP address");
        }

        var sources = (args.Password is not null ? 1 : 0) + (args.PasswordFile is not null ? 1 : 0) + (args.DisableTicketing ? 1 : 0);
        if (sources > 1)
        {
            throw new FormatException("give at most one of --password, --password-file and --disable-ticketing");
        }

        if (sources == 0)
        {
            args.GeneratedPasswordFile = WriteGeneratedPassword();
        }

        if (args.DisableTicketing)
        {
            if (args.PasswordExpires is not null)
            {
                throw new FormatException("--password-expires needs a password");
            }

            tickets.DisableTicketing();
        }
        else
        {
            var password = args.Password ?? ReadPasswordFile(args.PasswordFile ?? args.GeneratedPasswordFile!);
            tickets.SetPassword(password);
            if (args.PasswordExpires is { } when)
            {
                tickets.ExpirePassword(ParseExpiry(when, DateTimeOffset.UtcNow));
            }
        }

        var options = new SpiceServerOptions();
        tls.Apply(options, address);
        return options;
    }

    private static IPEndPoint ParseMetricsAddr(string text) =>
        IPEndPoint.TryParse(text, out var endPoint) && endPoint.Port != 0
            ? endPoint
            : throw new FormatException($"--metrics-addr '{text}' is not ADDR:PORT (an IP address and a port from 1)");

    private static string ReadPasswordFile(string path)
    {
        using var reader = new StreamReader(path);
        var line = reader.ReadLine() ?? string.Empty;
        return line.TrimEnd('\r');
    }

    /// <summary>
    /// Where a generated SPICE password goes: /run/netwire/spice-password for root, else the
    /// user's runtime directory (or the temp directory), created readable by the owner only.
    /// </summary>
    public static string GeneratedPasswordPath()
    {
        var socket = BridgeCommand.DefaultGuestSocket();
        return Path.Combine(Path.GetDirectoryName(socket)!, Path.GetFileNameWithoutExtension(socket) + "-spice-password");
    }

    private static string WriteGeneratedPassword()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("netwire runs on Linux");
        }

        var path = GeneratedPasswordPath();
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var password = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12));
        File.Delete(path);
        using (var file = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        using (var writer = new StreamWriter(file))
        {
            writer.WriteLine(password);
        }

        return path;
    }

    private sealed record ServeArguments(string SpiceAddr, Func<TlsCliOptions.TlsRequest> Tls, string? Password, string? PasswordFile, string? PasswordExpires, bool DisableTicketing, string? Qmp, string? Incoming = null, bool Tunnel = false, string? MetricsAddr = null)
    {
        /// <summary>Set when no password option was given and one was generated.</summary>
        public string? GeneratedPasswordFile { get; set; }
    }
}
