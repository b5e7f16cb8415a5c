using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using NetWire.Core.Net;
using NetWire.Control;
using NetWire.Control.Qmp;

namespace NetWire.Cli.Commands;

/// <summary>
/// <c>netwire ctl --qmp SPEC COMMAND [key=value...]</c>: one QMP command against a running
/// appliance. Prints the <c>return</c> value as JSON; an error reply goes to stderr (exit 1).
/// </summary>
internal static class CtlCommand
{
    public static Command Create()
    {
        var qmp = new Option<string>("--qmp")
        {
            Description = "The appliance's control socket: unix:PATH or tcp:ADDRESS:PORT",
            HelpName = "SPEC",
            Required = true,
        };
        var timeout = new Option<double>("--timeout")
        {
            Description = "Seconds to wait for the connection and the reply",
            DefaultValueFactory = _ => 30,
            HelpName = "S",
        };
        var name = new Argument<string>("COMMAND") { Description = "QMP command, e.g. query-spice, set_password, quit" };
        var arguments = new Argument<string[]>("ARGS")
        {
            Description = "key=value (true/false and integers become JSON booleans and numbers, anything else a string) or key:=JSON",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command("ctl", "Send one command to a running appliance's QMP control socket and print the reply.")
        {
            qmp, timeout, name, arguments,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(
            parse.GetValue(qmp)!, parse.GetValue(timeout), parse.GetValue(name)!, parse.GetValue(arguments) ?? [], cancellationToken));
        return command;
    }

    /// <summary>Turns <c>key=value</c> / <c>key:=JSON</c> words into a QMP arguments object.</summary>
    /// <exception cref="FormatException">A word without '=', an empty key, a repeated key, or bad JSON after ':='.</exception>
    public static JsonObject? ParseArguments(IReadOnlyList<string> words)
    {
        if (words.Count == 0)
        {
            return null;
        }

        var result = new JsonObject();
        foreach (var word in words)
        {
            var equals = word.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new FormatException($"'{word}': arguments are key=value or key:=JSON");
            }

            var raw = equals > 1 && word[equals - 1] == ':';
            var key = word[..(raw ? equals - 1 : equals)];
            var text = word[(equals + 1)..];
            JsonNode? value;
            if (raw)
            {
                try
                {
                    value = JsonNode.Parse(text);
                }
                catch (JsonException ex)
                {
                    throw new FormatException($"'{word}': not JSON after ':=': {ex.Message}", ex);
                }
            }
            else if (text is "true" or "false")
            {
                value = text == "true";
            }
            else if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            {
                value = number;
            }
            else
            {
                value = text;
            }

            if (key.Length == 0 || !result.TryAdd(key, value))
            {
                throw new FormatException($"'{word}': empty or repeated key");
            }
        }

        return result;
    }

    private static async Task<int> RunAsync(string spec, double timeoutSeconds, string name, string[] words, CancellationToken cancellationToken)
    {
        ControlEndpoint endpoint;
        JsonObject? arguments;
        try
        {
            endpoint = ControlEndpoint.Parse(spec);
            arguments = ParseArguments(words);
        }
        catch (FormatException ex)
        {
            await Console.Error.WriteLineAsync($"netwire ctl: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
        QmpClient client;
        try
        {
            client = await QmpClient.ConnectAsync(endpoint, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsConnectionFailure(ex))
        {
            await Console.Error.WriteLineAsync($"netwire ctl: cannot reach {spec}: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Setup;
        }

        await using (client.ConfigureAwait(false))
        {
            try
            {
                var negotiated = await client.NegotiateAsync(timeout.Token).ConfigureAwait(false);
                var reply = name == "qmp_capabilities" ? negotiated : await client.ExecuteAsync(name, arguments, timeout.Token).ConfigureAwait(false);
                if (reply["error"] is JsonObject error)
                {
                    await Console.Error.WriteLineAsync($"netwire ctl: {name}: {(string?)error["class"]}: {(string?)error["desc"]}").ConfigureAwait(false);
                    return ExitCodes.Failure;
                }

                Console.Out.WriteLine(reply["return"]?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? "{}");
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                await Console.Error.WriteLineAsync($"netwire ctl: {spec}: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failure;
            }
        }
    }

    /// <summary>The control socket could not be reached or answered nonsense, or the timeout passed.</summary>
    private static bool IsConnectionFailure(Exception ex) => IoErrors.IsIoFailure(ex) || ex is JsonException or OperationCanceledException;
}
