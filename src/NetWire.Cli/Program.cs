using System.CommandLine;
using NetWire.Cli.Commands;

namespace NetWire.Cli;

/// <summary>The <c>netwire</c> program: one verb per file under Commands/.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        // slirp4netns's own command line and help layout (Podman reads --help), and its TAP helper.
        if (args.Length > 0 && args[0] == Slirp.Slirp4netnsCommand.Verb)
        {
            return await Slirp.Slirp4netnsCommand.RunAsync(args[1..]).ConfigureAwait(false);
        }

        if (args.Length > 0 && args[0] == Slirp.Slirp4netnsCommand.HelperVerb)
        {
            return NetWire.Devices.Tap.NamespaceTap.RunHelper(args[1..]);
        }

        var root = new RootCommand("NetWire: a virtual network-wire appliance. Attaches QEMU guest NICs and bridges their frames to a TAP or libpcap device.")
        {
            BridgeCommand.Create(),
            CtlCommand.Create(),
            InspectCommand.Create(),
            ReplayCommand.Create(),
            RunCommand.Create(),
            ServeCommand.Create(),
            Slirp.Slirp4netnsListing.Create(),
            StatusCommand.Create(),
            TunnelClientCommand.Create(),
        };
        VersionInfo.Attach(root);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is not System.CommandLine.Help.HelpAction)
        {
            foreach (var error in parse.Errors)
            {
                await Console.Error.WriteLineAsync($"netwire: {error.Message}").ConfigureAwait(false);
            }

            await Console.Error.WriteLineAsync("Try 'netwire --help'.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }
}
