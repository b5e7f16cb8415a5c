using System.CommandLine;
using System.Text.Json;
using NetWire.Appliance;
using NetWire.Core.Net;

namespace NetWire.Cli.Commands;

/// <summary><c>netwire status FILE</c>: the counters a running or stopped appliance wrote with --status-file.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "The file given to --status-file" };
        var json = new Option<bool>("--json") { Description = "Print the JSON as written" };
        var command = new Command("status", "Show the counters (frames, bytes, drops by reason) of an appliance started with --status-file.")
        {
            file, json,
        };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!;
            string text;
            try
            {
                text = File.ReadAllText(path);
            }
            catch (Exception ex) when (IoErrors.IsFileError(ex))
            {
                Console.Error.WriteLine($"netwire status: cannot read '{path}': {ex.Message}");
                return ExitCodes.Setup;
            }

            if (parse.GetValue(json))
            {
                Console.Out.Write(text);
                return ExitCodes.Ok;
            }

            try
            {
                using var document = JsonDocument.Parse(text);
                Console.Out.Write(StatusReport.ToTable(document.RootElement));
                return ExitCodes.Ok;
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                Console.Error.WriteLine($"netwire status: '{path}' is not a NetWire status file: {ex.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }
}
