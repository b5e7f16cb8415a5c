using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Spice.Link;
using NetWire.Tunnel.Client;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire tunnel-client --server HOST:PORT [--password P | --password-file F] --service
/// NAME=HOST:PORT[,port=GUEST_PORT][,print] ...</c>: publishes TCP services reachable from
/// this machine to the guest of a NetWire appliance, through the SPICE tunnel channel.
/// </summary>
/// <remarks>
/// Prints one line per service once the server has given it a virtual IP
/// (<c>service NAME 10.0.2.31:8080 -&gt; HOST:PORT</c>), again after every reconnect. Exit
/// codes: 0 after SIGTERM/SIGINT, 2 usage, 1 a refused password.
/// </remarks>
internal static class TunnelClientCommand
{
    public static Command Create()
    {
        var server = new Option<string>("--server")
        {
            Description = "The NetWire SPICE server, HOST:PORT",
            Required = true,
        };
        var password = new Option<string?>("--password")
        {
            Description = "SPICE password. Visible in the process list: prefer --password-file",
        };
        var passwordFile = new Option<string?>("--password-file")
        {
            Description = "Read the SPICE password from the first line of this file",
        };
        var services = new Option<string[]>("--service")
        {
            Description = "NAME=TARGET_HOST:TARGET_PORT[,port=GUEST_PORT][,print]: a TCP service the guest reaches at a virtual IP (repeatable)",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var logLevel = BridgeCommand.LogLevelOption();
        logLevel.DefaultValueFactory = _ => LogLevel.Warning;
        var command = new Command("tunnel-client", "Publish TCP services to the guest of a NetWire appliance through the SPICE tunnel channel; reconnects with backoff.")
        {
            server, password, passwordFile, services, logLevel,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            TunnelClientOptions options;
            try
            {
                options = BuildOptions(parse.GetValue(server)!, parse.GetValue(password), parse.GetValue(passwordFile), parse.GetValue(services) ?? []);
            }
            catch (Exception ex) when (ExitCodes.IsBadOption(ex))
            {
                Console.Error.WriteLine($"netwire tunnel-client: {ex.Message}");
                return Task.FromResult(ExitCodes.Usage);
            }

            return RunAsync(options, parse.GetValue(logLevel), cancellationToken);
        });
        return command;
    }

    internal static TunnelClientOptions BuildOptions(string server, string? password, string? passwordFile, string[] services)
    {
        var colon = server.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(server.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is 0 or > 65535)
        {
            throw new FormatException($"--server '{server}' is not HOST:PORT");
        }

        if (password is not null && passwordFile is not null)
        {
            throw new FormatException("give at most one of --password and --password-file");
        }

        if (passwordFile is not null)
        {
            using var reader = new StreamReader(passwordFile);
            password = (reader.ReadLine() ?? string.Empty).TrimEnd('\r');
        }

        if (services.Length == 0)
        {
            throw new FormatException("at least one --service is needed");
        }

        var specs = new List<TunnelServiceSpec>();
        foreach (var text in services)
        {
            var spec = TunnelServiceSpec.Parse(text);
            foreach (var other in specs)
            {
                if (other.Name == spec.Name || (other.TargetHost == spec.TargetHost && other.GuestPort == spec.GuestPort))
                {
                    throw new FormatException($"--service '{text}': same name, or same host and guest port, as '{other.Name}'");
                }
            }

            specs.Add(spec);
        }

        return new TunnelClientOptions(server[..colon].Trim('[', ']'), port, TicketAuthority.Encode(password ?? string.Empty), specs);
    }

    private static async Task<int> RunAsync(TunnelClientOptions options, LogLevel level, CancellationToken cancellationToken)
    {
        using var loggers = Logging.Create(level);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var signals = StopSignals.CancelOnTermination(stop);
        var client = new TunnelClient(options, Published, loggers.CreateLogger<TunnelClient>());
        try
        {
            await client.RunAsync(stop.Token).ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        catch (SpiceLinkException ex)
        {
            await Console.Error.WriteLineAsync($"netwire tunnel-client: {ex.Message} (wrong or expired password)").ConfigureAwait(false);
            return ExitCodes.Failure;
        }
    }

    private static void Published(TunnelServiceSpec spec, IPAddress address)
    {
        // One line, flushed at once: scripts wait for it.
        Console.Out.WriteLine($"service {spec.Name} {address}:{spec.GuestPort} -> {spec.TargetHost}:{spec.TargetPort}");
        Console.Out.Flush();
    }
}
