using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NetWire.Core.Net;
using NetWire.Devices.Pcap;

namespace NetWire.Cli.Commands;

/// <summary><c>netwire inspect FILE</c>: what is in a capture at a glance. JSON shape in docs/cli.md.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "A pcap or pcapng file with Ethernet frames" };
        var json = new Option<bool>("--json") { Description = "Print the summary as JSON (shape in docs/cli.md)" };
        var flows = new Option<bool>("--flows") { Description = "List flows (5-tuple, both directions) with frames, bytes, duration and TCP events" };
        var top = new Option<int>("--top") { Description = "Show the N largest protocols and flows", DefaultValueFactory = _ => 10, HelpName = "N" };
        var filter = new Option<string?>("--filter") { Description = "Only frames matching this BPF expression (libpcap syntax)", HelpName = "BPF" };
        var spice = new Option<bool>("--spice") { Description = "Decode the SPICE conversations instead: link stages, messages by name, the migration timeline and the client's switch time" };
        var spicePort = new Option<int?>("--spice-port") { Description = "With --spice: also take TCP connections to this server port (besides those starting with the REDQ link magic)", HelpName = "PORT" };
        var command = new Command("inspect", "Summarise a capture: link types, frames, bytes, time span, protocols, flows, malformed frames; or its SPICE conversations (--spice).")
        {
            file, json, flows, top, filter, spice, spicePort,
        };
        command.SetAction((parse, _) => Task.FromResult(parse.GetValue(spice)
            ? RunSpice(parse.GetValue(file)!, parse.GetValue(json), parse.GetValue(spicePort))
            : Run(parse.GetValue(file)!, parse.GetValue(json), parse.GetValue(flows), parse.GetValue(top), parse.GetValue(filter))));
        return command;
    }

    private static int RunSpice(string path, bool json, int? port)
    {
        if (port is < 1 or > 65535)
        {
            Console.Error.WriteLine("netwire inspect: --spice-port must be 1-65535");
            return ExitCodes.Usage;
        }

        if (!TryInspect(path, () => SpiceInspector.Inspect(path, port), out var summary))
        {
            return ExitCodes.Usage;
        }

        Console.Out.Write(json ? SpiceReport.ToJson(summary) : SpiceReport.ToText(summary));
        return ExitCodes.Ok;
    }

    private static int Run(string path, bool json, bool flows, int top, string? filter)
    {
        if (top < 1)
        {
            Console.Error.WriteLine("netwire inspect: --top must be at least 1");
            return ExitCodes.Usage;
        }

        if (!TryInspect(path, () => CaptureInspector.Inspect(path, filter), out var summary))
        {
            return ExitCodes.Usage;
        }

        Console.Out.Write(json ? ToJson(summary, top) : ToText(summary, flows, top));
        return ExitCodes.Ok;
    }

    /// <summary>
    /// Reads the capture through <paramref name="inspect"/>; a malformed capture, a bad filter or an
    /// unreadable file is one error line (the caller exits 2).
    /// </summary>
    private static bool TryInspect<T>(string path, Func<T> inspect, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out T summary)
    {
        try
        {
            summary = inspect();
            return true;
        }
        catch (Exception ex) when (ex is CaptureFormatException or ArgumentException)
        {
            Console.Error.WriteLine($"netwire inspect: {ex.Message}");
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            Console.Error.WriteLine($"netwire inspect: cannot read '{path}': {ex.Message}");
        }

        summary = default;
        return false;
    }

    private static List<KeyValuePair<string, long>> TopProtocols(CaptureSummary summary, int top) =>
        summary.Protocols.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal).Take(top).ToList();

    private static List<CaptureFlow> TopFlows(CaptureSummary summary, int top) =>
        summary.Flows.Values.OrderByDescending(f => f.Bytes).ThenBy(f => f.Protocol + " " + f.A + " " + f.B, StringComparer.Ordinal).Take(top).ToList();

    private static double Seconds(long ns) => ns / 1e9;

    internal static string ToJson(CaptureSummary summary, int top)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("file", summary.File);
            writer.WriteString("format", summary.Format == CaptureFileFormat.PcapNg ? "pcapng" : "pcap");
            writer.WriteNumber("interfaces", summary.Interfaces);
            writer.WriteStartArray("link_types");
            foreach (var link in summary.LinkTypes)
            {
                writer.WriteNumberValue(link);
            }

            writer.WriteEndArray();
            writer.WriteNumber("frames", summary.Frames);
            writer.WriteNumber("bytes", summary.Bytes);
            writer.WriteNumber("filtered_out", summary.FilteredOut);
            writer.WriteNumber("first_ns", summary.FirstNs);
            writer.WriteNumber("last_ns", summary.LastNs);
            writer.WriteNumber("duration_s", Math.Round(Seconds(summary.LastNs - summary.FirstNs), 6));
            writer.WriteStartObject("protocols");
            foreach (var (name, count) in TopProtocols(summary, top))
            {
                writer.WriteNumber(name, count);
            }

            writer.WriteEndObject();
            writer.WriteNumber("flow_count", summary.Flows.Count);
            writer.WriteStartArray("flows");
            foreach (var flow in TopFlows(summary, top))
            {
                writer.WriteStartObject();
                writer.WriteString("protocol", flow.Protocol);
                writer.WriteString("a", flow.A);
                writer.WriteString("b", flow.B);
                writer.WriteNumber("frames", flow.Frames);
                writer.WriteNumber("bytes", flow.Bytes);
                writer.WriteNumber("duration_s", Math.Round(Seconds(flow.LastNs - flow.FirstNs), 6));
                if (flow.Tcp is { } tcp)
                {
                    writer.WriteStartObject("tcp");
                    writer.WriteBoolean("handshake", tcp.Handshake);
                    writer.WriteNumber("syn", tcp.Syn);
                    writer.WriteNumber("syn_ack", tcp.SynAck);
                    writer.WriteNumber("fin", tcp.Fin);
                    writer.WriteNumber("rst", tcp.Rst);
                    writer.WriteNumber("retransmissions", tcp.Retransmissions);
                    writer.WriteNumber("zero_windows", tcp.ZeroWindows);
                    writer.WriteEndObject();
                }

                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteStartArray("malformed");
            foreach (var (index, problem) in summary.Malformed)
            {
                writer.WriteStartObject();
                writer.WriteNumber("index", index);
                writer.WriteString("problem", problem);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + Environment.NewLine;
    }

    private static string ToText(CaptureSummary summary, bool flows, int top)
    {
        var text = new StringBuilder();
        var invariant = CultureInfo.InvariantCulture;
        text.Append(invariant, $"file       {summary.File} ({(summary.Format == CaptureFileFormat.PcapNg ? "pcapng" : "pcap")}, {summary.Interfaces} interface(s), link type(s) {string.Join(",", summary.LinkTypes)})\n");
        text.Append(invariant, $"frames     {summary.Frames}, {summary.Bytes} bytes{(summary.FilteredOut > 0 ? $" ({summary.FilteredOut} filtered out)" : "")}\n");
        if (summary.Frames > 0)
        {
            var first = DateTimeOffset.FromUnixTimeMilliseconds(summary.FirstNs / 1_000_000);
            text.Append(invariant, $"time       {first:yyyy-MM-dd HH:mm:ss.fff} UTC, span {Seconds(summary.LastNs - summary.FirstNs):F3} s\n");
        }

        text.Append("protocols\n");
        foreach (var (name, count) in TopProtocols(summary, top))
        {
            text.Append(invariant, $"  {name,-16} {count}\n");
        }

        text.Append(invariant, $"flows      {summary.Flows.Count}\n");
        if (flows)
        {
            foreach (var flow in TopFlows(summary, top))
            {
                text.Append(invariant, $"  {flow.Protocol,-6} {flow.A} <-> {flow.B}  {flow.Frames} frames, {flow.Bytes} bytes, {Seconds(flow.LastNs - flow.FirstNs):F3} s");
                if (flow.Tcp is { } tcp)
                {
                    text.Append(invariant, $"  {(tcp.Handshake ? "handshake" : "no handshake")}, fin {tcp.Fin}, rst {tcp.Rst}, retransmissions {tcp.Retransmissions}, zero windows {tcp.ZeroWindows}");
                }

                text.Append('\n');
            }
        }

        text.Append(invariant, $"malformed  {summary.Malformed.Count}\n");
        foreach (var (index, problem) in summary.Malformed.Take(top))
        {
            text.Append(invariant, $"  #{index}: {problem}\n");
        }

        return text.ToString();
    }
}
