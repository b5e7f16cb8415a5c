using System.CommandLine;
using NetWire.Cli.Commands;

namespace NetWire.Cli;

/// <summary>The <c>netwire</c> program: one verb per file under Commands/.</summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = new RootCommand("NetWire: a virtual network-wire appliance. Attaches QEMU guest NICs and bridges their frames to a TAP or libpcap device.")
        {
            BridgeCommand.Create(),
            StatusCommand.Create(),
        };
        var parse = root.Parse(args);
        return await parse.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }).ConfigureAwait(false);
    }
}
