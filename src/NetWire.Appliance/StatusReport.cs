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

    /// <param name="sections">Writes the serve-only objects (<c>spice</c>, <c>incoming</c>) after the wire's, or null.</param>
    public static byte[] ToJson(IReadOnlyList<WireEnd> ends, PcapNgWriter? capture, string? capturePath, string state, Action<Utf8JsonWriter>? sections = null)
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

                var guestIpv6 = end.GuestIpv6;
                if (guestIpv6.Count > 0)
                {
                    json.WriteStartArray("guest_ip6");
                    foreach (var address in guestIpv6)
                    {
                        json.WriteStringValue(address.ToString());
                    }

                    json.WriteEndArray();
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

            sections?.Invoke(json);
            json.WriteEndObject();
        }

        return stream.ToArray();
    }

    /// <summary>The SPICE server's link stage: pending links, sessions and how links ended.</summary>
    public static void WriteSpice(Utf8JsonWriter json, NetWire.Spice.SpiceServer server)
    {
        var c = server.Counters;
        json.WriteStartObject("spice");
        json.WriteNumber("sessions", server.Sessions.Count);
        json.WriteNumber("links_pending", server.PendingLinks);
        json.WriteNumber("link_linked", c.Of(NetWire.Spice.Link.LinkOutcome.Linked));
        json.WriteNumber("link_evicted", c.Of(NetWire.Spice.Link.LinkOutcome.Evicted));
        json.WriteNumber("link_timed_out", c.Of(NetWire.Spice.Link.LinkOutcome.TimedOut));
        json.WriteNumber("link_client_left", c.Of(NetWire.Spice.Link.LinkOutcome.ClientLeft));
        json.WriteNumber("link_tls_plaintext", c.Of(NetWire.Spice.Link.LinkOutcome.TlsPlaintext));
        json.WriteNumber("link_tls_failed", c.Of(NetWire.Spice.Link.LinkOutcome.TlsFailed));
        json.WriteNumber("link_tls_on_plain_port", c.Of(NetWire.Spice.Link.LinkOutcome.TlsOnPlainPort));
        json.WriteNumber("link_refused", c.TotalRefused);
        json.WriteEndObject();
    }

    /// <summary>The migration target's listener: connections accepted, pending, evicted, silent, refused.</summary>
    public static void WriteIncoming(Utf8JsonWriter json, NetWire.Control.Migration.IncomingMigration incoming)
    {
        json.WriteStartObject("incoming");
        json.WriteBoolean("adopted", incoming.Adopted.IsCompletedSuccessfully);
        json.WriteNumber("accepted", incoming.Accepted);
        json.WriteNumber("pending", incoming.Pending);
        json.WriteNumber("evicted", incoming.Evicted);
        json.WriteNumber("silent", incoming.Silent);
        json.WriteNumber("refused", incoming.Refused);
        json.WriteNumber("tls_refused", incoming.TlsRefused);
        json.WriteEndObject();
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
        json.WriteNumber("router_advertisements", c.RouterAdvertisements);
        json.WriteNumber("dhcpv6_replies", c.Dhcpv6Replies);
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

        if (status.TryGetProperty("spice", out var spice))
        {
            text.AppendLine(
                $"spice    {spice.GetProperty("sessions").GetInt64()} sessions, {spice.GetProperty("links_pending").GetInt64()} links pending; links: " +
                $"{spice.GetProperty("link_linked").GetInt64()} linked, {spice.GetProperty("link_refused").GetInt64()} refused, {spice.GetProperty("link_evicted").GetInt64()} evicted, " +
                $"{spice.GetProperty("link_timed_out").GetInt64()} timed out, {spice.GetProperty("link_client_left").GetInt64()} left");
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
