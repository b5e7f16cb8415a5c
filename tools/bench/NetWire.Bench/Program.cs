using System.Globalization;

namespace NetWire.Bench;

/// <summary>
/// <c>netwire-bench</c>: the measuring half of tools/bench/bridge.sh. <c>measure</c> runs one
/// scenario and prints one JSON line; <c>summarize</c> turns the lines into the tables of
/// docs/performance.md. It needs root (TAP, AF_PACKET) and is meant to run inside the network
/// namespace the script creates.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage:
          netwire-bench measure --scenario bridge|raw|sharppcap|generator --direction g2h|h2g
                                --size BYTES --tap IFNAME [--socket PATH --status-file PATH]
                                [--warmup S] [--seconds S] [--flow-window FRAMES] [--run N]
                                [--quiet-timeout S]
          netwire-bench summarize RESULTS.jsonl

        measure: g2h sends frames towards the TAP (bridge: into netwire's guest socket; raw: write(2)
        on the TAP fd; sharppcap: TunnelDevice.SendPacket; generator: the socket writer alone) and
        counts them in the TAP's rx_packets. h2g has an AF_PACKET socket send frames out of the TAP
        and counts what arrives (bridge: on netwire's guest socket; raw: read(2) on the TAP fd;
        sharppcap: TunnelDevice capture; generator: the sender alone, TAP unread).
        """;

    public static int Main(string[] args)
    {
        try
        {
            switch (args.Length > 0 ? args[0] : "")
            {
                case "measure":
                    var result = new Measurement(ParseMeasure(args.AsSpan(1))).Run();
                    Console.Out.WriteLine(result.ToJson());
                    Console.Out.Flush();

                    // Load threads may be blocked in system calls; leave without joining them.
                    Environment.Exit(0);
                    return 0;
                case "summarize" when args.Length == 2:
                    Console.Out.Write(Summary.ToMarkdown(File.ReadAllLines(args[1])));
                    return 0;
                case "-h" or "--help" or "help":
                    Console.Out.WriteLine(Usage);
                    return 0;
                default:
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"netwire-bench: {ex.Message}");
            return 2;
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"netwire-bench: {ex.Message}");
            return 1;
        }
    }

    private static MeasureOptions ParseMeasure(ReadOnlySpan<string> args)
    {
        string? scenario = null, direction = null, tap = null, socket = null, status = null;
        int size = 64, flowWindow = 768, run = 1;
        double warmup = 3, seconds = 5, quietTimeout = 120;
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--scenario":
                    scenario = value;
                    break;
                case "--direction":
                    direction = value;
                    break;
                case "--size":
                    size = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--tap":
                    tap = value;
                    break;
                case "--socket":
                    socket = value;
                    break;
                case "--status-file":
                    status = value;
                    break;
                case "--warmup":
                    warmup = double.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--flow-window":
                    flowWindow = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--quiet-timeout":
                    quietTimeout = double.Parse(value, CultureInfo.InvariantCulture);
                    break;
                case "--run":
                    run = int.Parse(value, CultureInfo.InvariantCulture);
                    break;
                default:
                    throw new ArgumentException($"unknown option {args[i]}");
            }

            i++;
        }

        if (scenario is null || direction is null || tap is null)
        {
            throw new ArgumentException("--scenario, --direction and --tap are required");
        }

        if (size is < TestFrame.MinLength or > TestFrame.MaxLength)
        {
            throw new ArgumentException($"--size must be {TestFrame.MinLength} to {TestFrame.MaxLength}");
        }

        return new MeasureOptions(scenario, direction, size, tap, socket, status, TimeSpan.FromSeconds(warmup), TimeSpan.FromSeconds(seconds), flowWindow, run, TimeSpan.FromSeconds(quietTimeout));
    }
}
