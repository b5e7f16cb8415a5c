using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Core.Tls;
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
/// (<c>service NAME 10.0.2.31:8080 -&gt; HOST:PORT</c>), again after every reconnect. With
/// <c>--tls --ca-file F [--cert-subject S]</c> it links to the server's TLS port. Exit codes: 0
/// after SIGTERM/SIGINT, 2 usage, 1 a refused password or a server certificate that does not
/// verify, 3 a CA file that cannot be used.
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
        var tls = new Option<bool>("--tls")
        {
            Description = "Link over TLS: --server names the SPICE TLS port (netwire serve --tls-port), and migrations follow the target's TLS port",
        };
        var caFile = new Option<string?>("--ca-file")
        {
            Description = "With --tls: the CA certificates (PEM) the server's certificate must chain to",
            HelpName = "FILE",
        };
        var certSubject = new Option<string?>("--cert-subject")
        {
            Description = "With --tls: the subject the server's certificate must carry (\"CN=host,O=org\", in the certificate's order), instead of matching the host name",
            HelpName = "SUBJECT",
        };
        var noSocketMigration = new Option<bool>("--no-socket-migration")
        {
            Description = "Do not offer the tunnel's migration cap: a migration of the appliance resets the guest's connections to the services instead of moving them (as a client without the cap does)",
        };
        var logLevel = BridgeCommand.LogLevelOption();
        logLevel.DefaultValueFactory = _ => LogLevel.Warning;
        var command = new Command("tunnel-client", "Publish TCP services to the guest of a NetWire appliance through the SPICE tunnel channel; reconnects with backoff.")
        {
            server, password, passwordFile, services, tls, caFile, certSubject, noSocketMigration, logLevel,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            TunnelClientOptions options;
            try
            {
                options = BuildOptions(parse.GetValue(server)!, parse.GetValue(password), parse.GetValue(passwordFile), parse.GetValue(services) ?? []);
                options = options with { Tls = BuildTls(parse.GetValue(tls), parse.GetValue(caFile), parse.GetValue(certSubject)), SocketMigration = !parse.GetValue(noSocketMigration) };
            }
            catch (Exception ex) when (ExitCodes.IsBadOption(ex))
            {
                Console.Error.WriteLine($"netwire tunnel-client: {ex.Message}");
                return Task.FromResult(ExitCodes.Usage);
            }
            catch (TlsCredentialsException ex)
            {
                Console.Error.WriteLine($"netwire tunnel-client: --ca-file {ex.Message}");
                return Task.FromResult(ExitCodes.Setup);
            }

            return RunAsync(options, parse.GetValue(logLevel), cancellationToken);
        });
        return command;
    }

    /// <summary>The TLS settings of <c>--tls --ca-file F [--cert-subject S]</c>, or null without <c>--tls</c>.</summary>
    /// <exception cref="FormatException">--ca-file or --cert-subject without --tls, --tls without --ca-file, a malformed subject.</exception>
    /// <exception cref="TlsCredentialsException">The CA file cannot be used.</exception>
    internal static TlsSettings? BuildTls(bool tls, string? caFile, string? certSubject)
    {
        if (!tls)
        {
            return caFile is null && certSubject is null ? null : throw new FormatException("--ca-file and --cert-subject need --tls");
        }

        if (caFile is null)
        {
            throw new FormatException("--tls needs --ca-file (the CA that signed the server's certificate)");
        }

        if (certSubject is not null)
        {
            _ = TlsPeerCheck.ParseSubject(certSubject);
        }

        return new TlsSettings(X509Credentials.LoadAuthorities(caFile, DateTimeOffset.UtcNow), peerSubject: certSubject);
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
        catch (System.Security.Authentication.AuthenticationException ex)
        {
            await Console.Error.WriteLineAsync($"netwire tunnel-client: {ex.Message}").ConfigureAwait(false);
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
