using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Control;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire serve</c>: the appliance. For now it runs the SPICE server (link, ticket auth,
/// main channel); guest ends, the gateway, QMP and migration join as further
/// <see cref="IServeComponent"/>s.
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
        var port = new Option<int>("--spice-port")
        {
            Description = "SPICE TCP port (0: any free port, printed at start)",
            DefaultValueFactory = _ => SpiceServerOptions.DefaultPort,
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
        var logLevel = BridgeCommand.LogLevelOption();
        var command = new Command("serve", "Run the NetWire appliance: the SPICE server (link with RSA ticket auth, main channel) on --spice-addr:--spice-port. Give --password, --password-file or --disable-ticketing.")
        {
            addr, port, password, passwordFile, expires, disable, qmp, logLevel,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(
            new ServeArguments(
                parse.GetValue(addr)!,
                parse.GetValue(port),
                parse.GetValue(password),
                parse.GetValue(passwordFile),
                parse.GetValue(expires),
                parse.GetValue(disable),
                parse.GetValue(qmp)),
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

    private static async Task<int> RunAsync(ServeArguments args, LogLevel level, CancellationToken cancellationToken)
    {
        SpiceServerOptions spiceOptions;
        ControlEndpoint? control;
        var tickets = new TicketAuthority(TimeProvider.System);
        try
        {
            spiceOptions = BuildSpiceOptions(args, tickets);
            control = args.Qmp is null ? null : ControlEndpoint.Parse(args.Qmp);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"netwire serve: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        using var loggers = Logging.Create(level);
        var logger = loggers.CreateLogger("NetWire.Serve");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);

        var spice = new SpiceServerComponent(spiceOptions, tickets, loggers);
        List<IServeComponent> components = control is null ? [spice] : [spice, new ControlComponent(control, spice, loggers, stop)];
        var started = new List<IServeComponent>();
        var exitCode = ExitCodes.Ok;
        try
        {
            foreach (var component in components)
            {
                try
                {
                    await component.StartAsync(stop.Token).ConfigureAwait(false);
                    started.Add(component);
                }
                catch (SocketException ex)
                {
                    await Console.Error.WriteLineAsync($"netwire serve: {component.Name}: cannot listen on {(component is ControlComponent c ? c.Endpoint.Text : spiceOptions.EndPoint.ToString())}: {ex.Message}").ConfigureAwait(false);
                    return ExitCodes.Setup;
                }
            }

            Task anyEnded = Task.WhenAny(started.Select(c => c.Completion));
            Task stopped = Task.Delay(Timeout.Infinite, stop.Token);
            await Task.WhenAny(anyEnded, stopped).ConfigureAwait(false);
            if (!stop.IsCancellationRequested)
            {
                exitCode = ExitCodes.Failure;
            }

            CliLog.Stopping(logger, stop.IsCancellationRequested ? "signal" : "a component stopped");
        }
        finally
        {
            for (var i = started.Count - 1; i >= 0; i--)
            {
                await started[i].StopAsync().ConfigureAwait(false);
            }

            foreach (var component in components)
            {
                await component.DisposeAsync().ConfigureAwait(false);
            }
        }

        return exitCode;
    }

    private static SpiceServerOptions BuildSpiceOptions(ServeArguments args, TicketAuthority tickets)
    {
        if (!IPAddress.TryParse(args.SpiceAddr, out var address))
        {
            throw new FormatException($"--spice-addr '{args.SpiceAddr}' is not an IP address");
        }

        if (args.SpicePort is < 0 or > 65535)
        {
            throw new FormatException($"--spice-port {args.SpicePort} is not a TCP port");
        }

        var sources = (args.Password is not null ? 1 : 0) + (args.PasswordFile is not null ? 1 : 0) + (args.DisableTicketing ? 1 : 0);
        if (sources != 1)
        {
            throw new FormatException("give exactly one of --password, --password-file and --disable-ticketing");
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
            var password = args.Password ?? ReadPasswordFile(args.PasswordFile!);
            tickets.SetPassword(password);
            if (args.PasswordExpires is { } when)
            {
                tickets.ExpirePassword(ParseExpiry(when, DateTimeOffset.UtcNow));
            }
        }

        return new SpiceServerOptions { EndPoint = new IPEndPoint(address, args.SpicePort) };
    }

    private static string ReadPasswordFile(string path)
    {
        using var reader = new StreamReader(path);
        var line = reader.ReadLine() ?? string.Empty;
        return line.TrimEnd('\r');
    }

    private sealed record ServeArguments(string SpiceAddr, int SpicePort, string? Password, string? PasswordFile, string? PasswordExpires, bool DisableTicketing, string? Qmp);
}
