using System.Text;
using System.Text.Json;
using NetWire.Core.Frames;
using NetWire.Core.Taps;
using NetWire.Core.Wire;

namespace NetWire.Appliance;

/// <summary>
/// The appliance's counters as JSON (the <c>--status-file</c> and <c>netwire status --json</c>
/// shape, documented in docs/cli.md) and as a table for people.
/// </summary>
internal static class StatusReport
{
    private static readonly DropReason[] s_reasons = Enum.GetValues<DropReason>();

    public static byte[] ToJson(IReadOnlyList<WireEnd> ends, PcapNgWriter? capture, string? capturePath, string state)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("state", state);
            json.WriteString("time", DateTimeOffset.UtcNow);
            json.WriteNumber("pid", Environment.ProcessId);
            json.WriteNumber("frames_in_flight", FramePool.Shared.Outstanding);
            json.WriteNumber("gc_allocated_bytes", GC.GetTotalAllocatedBytes(precise: false));
            json.WriteNumber("working_set_bytes", Environment.WorkingSet);
            json.WriteStartArray("ends");
            foreach (var end in ends)
            {
                end.RefreshCounters();
                var c = end.Counters;
                json.WriteStartObject();
                json.WriteString("name", end.Name);
                json.WriteString("device", end.Description);
                json.WriteString("interface", end.Interface.ToString());
                if (end.GuestIp is { } guestIp)
                {
                    json.WriteString("guest_ip", guestIp.ToString());
                }
                json.WriteNumber("rx_frames", c.RxFrames);
                json.WriteNumber("rx_bytes", c.RxBytes);
                json.WriteNumber("tx_frames", c.TxFrames);
                json.WriteNumber("tx_bytes", c.TxBytes);
                json.WriteNumber("connections", c.Connections);
                json.WriteNumber("queued", end.QueuedFrames);
                json.WriteNumber("drops_total", c.TotalDrops);
                json.WriteStartObject("drops");
                foreach (var reason in s_reasons)
                {
                    json.WriteNumber(NetWire.Core.Naming.Words(reason.ToString(), '_'), c.Drops(reason));
                }

                json.WriteEndObject();
                if (end is NetWire.Stack.GatewayEnd gateway)
                {
                    WriteGateway(json, gateway);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            if (capture is not null)
            {
                json.WriteStartObject("capture");
                json.WriteString("path", capturePath);
                json.WriteNumber("frames", capture.FramesWritten);
                json.WriteNumber("dropped", capture.FramesDropped);
                json.WriteNumber("truncated", capture.FramesTruncated);
                json.WriteNumber("files", capture.FilesOpened);
                if (capture.OutputError is { } error)
                {
                    json.WriteString("error", error);
                }
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>The user-mode gateway's flow totals and its drops by reason (every reason, zero included).</summary>
    private static void WriteGateway(Utf8JsonWriter json, NetWire.Stack.GatewayEnd gateway)
    {
        var c = gateway.StackCounters;
        json.WriteStartObject("gateway");
        json.WriteNumber("tcp_connections", gateway.TcpConnections);
        json.WriteNumber("tcp_opened", c.TcpOpened);
        json.WriteNumber("tcp_refused", c.TcpRefused);
        json.WriteNumber("tcp_retransmits", c.Retransmits);
        json.WriteNumber("udp_flows", c.UdpFlows);
        json.WriteNumber("dhcp_leases", c.DhcpLeases);
        json.WriteStartObject("drops");
        foreach (var reason in Enum.GetValues<NetWire.Stack.StackDrop>())
        {
            json.WriteNumber(NetWire.Stack.StackCounters.Name(reason), c.Drops(reason));
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    public static string ToTable(JsonElement status)
    {
        var text = new StringBuilder();
        text.AppendLine($"state {status.GetProperty("state").GetString()}, pid {status.GetProperty("pid").GetInt32()}, at {status.GetProperty("time").GetString()}");
        text.AppendLine($"{"end",-8} {"rx frames",12} {"rx bytes",14} {"tx frames",12} {"tx bytes",14} {"drops",8}  device");
        foreach (var end in status.GetProperty("ends").EnumerateArray())
        {
            text.AppendLine(
                $"{end.GetProperty("name").GetString(),-8} {end.GetProperty("rx_frames").GetInt64(),12} {end.GetProperty("rx_bytes").GetInt64(),14} " +
                $"{end.GetProperty("tx_frames").GetInt64(),12} {end.GetProperty("tx_bytes").GetInt64(),14} {end.GetProperty("drops_total").GetInt64(),8}  {end.GetProperty("device").GetString()}");
            AppendDrops(text, end.GetProperty("drops"), "dropped");

            if (end.TryGetProperty("gateway", out var gateway))
            {
                text.AppendLine(
                    $"         gateway: {gateway.GetProperty("tcp_opened").GetInt64()} TCP opened, {gateway.GetProperty("tcp_refused").GetInt64()} refused, " +
                    $"{gateway.GetProperty("tcp_connections").GetInt64()} now, {gateway.GetProperty("udp_flows").GetInt64()} UDP flows, {gateway.GetProperty("dhcp_leases").GetInt64()} DHCP leases");
                AppendDrops(text, gateway.GetProperty("drops"), "gateway dropped");
            }
        }

        if (status.TryGetProperty("capture", out var capture))
        {
            text.AppendLine($"capture  {capture.GetProperty("frames").GetInt64()} frames to {capture.GetProperty("path").GetString()}");
            if (capture.TryGetProperty("dropped", out var lost) && lost.GetInt64() != 0)
            {
                var why = capture.TryGetProperty("error", out var error) ? error.GetString() : "the output was too slow";
                text.AppendLine($"         not captured {lost.GetInt64()} ({why})");
            }
        }

        return text.ToString();
    }

    /// <summary>One line per non-zero drop reason of a "drops" object.</summary>
    private static void AppendDrops(StringBuilder text, JsonElement drops, string label)
    {
        foreach (var drop in drops.EnumerateObject())
        {
            if (drop.Value.GetInt64() != 0)
            {
                text.AppendLine($"         {label} {drop.Value.GetInt64()} ({drop.Name})");
            }
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically (temp file, rename).</summary>
    public static void WriteAtomically(string path, byte[] bytes)
    {
        var temp = path + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }
}
