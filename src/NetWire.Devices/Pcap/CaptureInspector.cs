using System.Net;
using PacketDotNet;
using SharpPcap.LibPcap;

namespace NetWire.Devices.Pcap;

/// <summary>TCP events seen on one flow.</summary>
public sealed class TcpFlowState
{
    /// <summary>SYN without ACK.</summary>
    public int Syn { get; set; }

    /// <summary>SYN with ACK.</summary>
    public int SynAck { get; set; }

    /// <summary>FIN segments.</summary>
    public int Fin { get; set; }

    /// <summary>RST segments.</summary>
    public int Rst { get; set; }

    /// <summary>Segments carrying data at a sequence number already seen with data in the same direction.</summary>
    public int Retransmissions { get; set; }

    /// <summary>Segments advertising a zero window (RST excluded).</summary>
    public int ZeroWindows { get; set; }

    /// <summary>A SYN and a SYN-ACK were both seen.</summary>
    public bool Handshake => Syn > 0 && SynAck > 0;

    /// <summary>(direction, sequence) of data segments seen, for retransmission detection.</summary>
    internal HashSet<(bool Forward, uint Sequence)> DataSeen { get; } = [];
}

/// <summary>One 5-tuple flow, both directions (A is the side that sent first).</summary>
public sealed class CaptureFlow
{
    /// <summary>TCP, UDP, ICMP or the IP protocol number.</summary>
    public required string Protocol { get; init; }

    /// <summary>Address and port of the side that sent first.</summary>
    public required string A { get; init; }

    /// <summary>Address and port of the other side.</summary>
    public required string B { get; init; }

    /// <summary>Frames in both directions.</summary>
    public long Frames { get; set; }

    /// <summary>Captured bytes in both directions.</summary>
    public long Bytes { get; set; }

    /// <summary>First frame's time, ns since the epoch.</summary>
    public long FirstNs { get; set; }

    /// <summary>Last frame's time, ns since the epoch.</summary>
    public long LastNs { get; set; }

    /// <summary>TCP flows only.</summary>
    public TcpFlowState? Tcp { get; init; }
}

/// <summary>What <see cref="CaptureInspector"/> found in a file.</summary>
public sealed class CaptureSummary
{
    /// <summary>The file as given.</summary>
    public required string File { get; init; }

    /// <summary>pcap or pcapng.</summary>
    public CaptureFileFormat Format { get; set; }

    /// <summary>Interfaces (pcapng) or 1 (pcap).</summary>
    public int Interfaces { get; set; }

    /// <summary>Distinct link types; always Ethernet (1) as the reader refuses others.</summary>
    public SortedSet<int> LinkTypes { get; } = [];

    /// <summary>Frames read (matching the filter, if any).</summary>
    public long Frames { get; set; }

    /// <summary>Captured bytes of those frames.</summary>
    public long Bytes { get; set; }

    /// <summary>Frames the filter left out.</summary>
    public long FilteredOut { get; set; }

    /// <summary>First frame's time, ns since the epoch; 0 when empty.</summary>
    public long FirstNs { get; set; }

    /// <summary>Last frame's time.</summary>
    public long LastNs { get; set; }

    /// <summary>Frames per protocol path ("IPv4/TCP", "ARP", "0x88cc").</summary>
    public Dictionary<string, long> Protocols { get; } = new(StringComparer.Ordinal);

    /// <summary>Flows by key.</summary>
    public Dictionary<string, CaptureFlow> Flows { get; } = new(StringComparer.Ordinal);

    /// <summary>Frames that do not dissect: 1-based index and what is wrong.</summary>
    public List<(long Index, string Problem)> Malformed { get; } = [];
}

/// <summary>
/// Dissects every frame of a capture with PacketDotNet: protocols, 5-tuple flows with TCP events,
/// malformed frames. Files are read with <see cref="CaptureFileReader"/>, so a bad file gives the
/// same located <see cref="CaptureFormatException"/> as replay. <c>--filter</c> is compiled by
/// libpcap through SharpPcap's <see cref="BpfProgram"/> and run on each frame.
/// </summary>
public static class CaptureInspector
{
    /// <summary>Reads and dissects <paramref name="path"/>; throws <see cref="CaptureFormatException"/> or <see cref="ArgumentException"/> for a bad filter.</summary>
    public static CaptureSummary Inspect(string path, string? filter)
    {
        using var bpf = filter is null ? null : BpfProgram.TryCreate(LinkLayers.Ethernet, filter) ?? throw new ArgumentException($"bad filter '{filter}'");
        var summary = new CaptureSummary { File = path };
        using var reader = CaptureFileReader.Open(path);
        summary.Format = reader.Format;
        while (reader.TryReadNext(out var record))
        {
            var data = reader.Data;
            if (bpf is not null && !bpf.Matches(data))
            {
                summary.FilteredOut++;
                continue;
            }

            if (summary.Frames == 0)
            {
                summary.FirstNs = record.TimestampNs;
            }

            summary.Frames++;
            summary.Bytes += data.Length;
            summary.LastNs = Math.Max(summary.LastNs, record.TimestampNs);
            Dissect(summary, record, data.ToArray());
        }

        summary.Interfaces = reader.Interfaces.Count;
        foreach (var link in reader.Interfaces)
        {
            summary.LinkTypes.Add(link.LinkType);
        }

        return summary;
    }

    private static void Dissect(CaptureSummary summary, CaptureRecord record, byte[] bytes)
    {
        if (bytes.Length < 14)
        {
            Count(summary, "runt");
            summary.Malformed.Add((record.Number, $"{bytes.Length} bytes, shorter than an Ethernet header"));
            return;
        }

        EthernetPacket ethernet;
        try
        {
            ethernet = new EthernetPacket(new PacketDotNet.Utils.ByteArraySegment(bytes));
        }
        catch (Exception ex) when (ex is ArgumentException or IndexOutOfRangeException or InvalidOperationException)
        {
            Count(summary, "undissectable");
            summary.Malformed.Add((record.Number, $"does not dissect: {ex.Message}"));
            return;
        }

        var etherType = (bytes[12] << 8) | bytes[13];
        switch (etherType)
        {
            case 0x0806:
                Count(summary, "ARP");
                if (bytes.Length < 42)
                {
                    summary.Malformed.Add((record.Number, $"ARP packet of {bytes.Length - 14} bytes, shorter than 28"));
                }

                return;
            case 0x0800:
                DissectIp(summary, record, bytes, 14, "IPv4");
                return;
            case 0x86dd:
                DissectIp(summary, record, bytes, 14, "IPv6");
                return;
            default:
                Count(summary, $"0x{etherType:x4}");
                _ = ethernet;
                return;
        }
    }

    private static void DissectIp(CaptureSummary summary, CaptureRecord record, byte[] bytes, int offset, string family)
    {
        var available = bytes.Length - offset;
        int headerLength;
        int totalLength;
        int protocol;
        IPAddress source;
        IPAddress destination;
        if (family == "IPv4")
        {
            if (available < 20 || (bytes[offset] >> 4) != 4 || (bytes[offset] & 0x0f) < 5)
            {
                Count(summary, "IPv4/malformed");
                summary.Malformed.Add((record.Number, "IPv4 header shorter than 20 bytes or bad version/IHL"));
                return;
            }

            headerLength = (bytes[offset] & 0x0f) * 4;
            totalLength = (bytes[offset + 2] << 8) | bytes[offset + 3];
            protocol = bytes[offset + 9];
            source = new IPAddress(bytes.AsSpan(offset + 12, 4));
            destination = new IPAddress(bytes.AsSpan(offset + 16, 4));
            if (totalLength < headerLength || totalLength > available)
            {
                Count(summary, "IPv4/malformed");
                summary.Malformed.Add((record.Number, $"IPv4 total length {totalLength} does not fit the {available} bytes after the Ethernet header"));
                return;
            }

            if (((bytes[offset + 6] & 0x1f) | bytes[offset + 7]) != 0)
            {
                Count(summary, "IPv4/fragment");
                return;
            }
        }
        else
        {
            if (available < 40)
            {
                Count(summary, "IPv6/malformed");
                summary.Malformed.Add((record.Number, "IPv6 header shorter than 40 bytes"));
                return;
            }

            headerLength = 40;
            totalLength = 40 + ((bytes[offset + 4] << 8) | bytes[offset + 5]);
            protocol = bytes[offset + 6];
            source = new IPAddress(bytes.AsSpan(offset + 8, 16));
            destination = new IPAddress(bytes.AsSpan(offset + 24, 16));
            if (totalLength > available)
            {
                Count(summary, "IPv6/malformed");
                summary.Malformed.Add((record.Number, $"IPv6 payload length {totalLength - 40} does not fit the {available - 40} bytes captured"));
                return;
            }

            // RFC 8200 4: skip hop-by-hop (0), routing (43) and destination options (60) to the upper layer.
            while (protocol is 0 or 43 or 60)
            {
                if (headerLength + 8 > totalLength)
                {
                    Count(summary, "IPv6/malformed");
                    summary.Malformed.Add((record.Number, $"IPv6 extension header {protocol} runs past the payload"));
                    return;
                }

                var next = bytes[offset + headerLength];
                headerLength += (bytes[offset + headerLength + 1] + 1) * 8;
                protocol = next;
                if (headerLength > totalLength)
                {
                    Count(summary, "IPv6/malformed");
                    summary.Malformed.Add((record.Number, "IPv6 extension header runs past the payload"));
                    return;
                }
            }
        }

        var l4 = bytes.AsSpan(offset + headerLength, totalLength - headerLength);
        var name = protocol switch { 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6", _ => protocol.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        Count(summary, $"{family}/{name}");
        int sourcePort = 0, destinationPort = 0;
        if (protocol is 6 or 17)
        {
            var minimum = protocol == 6 ? 20 : 8;
            if (l4.Length < minimum || (protocol == 6 && ((l4[12] >> 4) * 4 < 20 || (l4[12] >> 4) * 4 > l4.Length)))
            {
                summary.Malformed.Add((record.Number, $"{name} header does not fit the {l4.Length} bytes of the IP payload"));
                return;
            }

            sourcePort = (l4[0] << 8) | l4[1];
            destinationPort = (l4[2] << 8) | l4[3];
        }

        var a = Endpoint(source, sourcePort, protocol);
        var b = Endpoint(destination, destinationPort, protocol);
        var forwardKey = $"{name} {a} {b}";
        var reverseKey = $"{name} {b} {a}";
        var forward = true;
        if (!summary.Flows.TryGetValue(forwardKey, out var flow))
        {
            if (summary.Flows.TryGetValue(reverseKey, out flow))
            {
                forward = false;
            }
            else
            {
                flow = new CaptureFlow { Protocol = name, A = a, B = b, FirstNs = record.TimestampNs, Tcp = protocol == 6 ? new TcpFlowState() : null };
                summary.Flows.Add(forwardKey, flow);
            }
        }

        flow.Frames++;
        flow.Bytes += bytes.Length;
        flow.LastNs = Math.Max(flow.LastNs, record.TimestampNs);
        if (flow.Tcp is { } tcp)
        {
            var flags = l4[13];
            var syn = (flags & 0x02) != 0;
            var ack = (flags & 0x10) != 0;
            var rst = (flags & 0x04) != 0;
            tcp.Syn += syn && !ack ? 1 : 0;
            tcp.SynAck += syn && ack ? 1 : 0;
            tcp.Fin += (flags & 0x01) != 0 ? 1 : 0;
            tcp.Rst += rst ? 1 : 0;
            var window = (l4[14] << 8) | l4[15];
            tcp.ZeroWindows += window == 0 && !rst ? 1 : 0;
            var payload = l4.Length - ((l4[12] >> 4) * 4);
            if (payload > 0)
            {
                var sequence = (uint)((l4[4] << 24) | (l4[5] << 16) | (l4[6] << 8) | l4[7]);
                if (!tcp.DataSeen.Add((forward, sequence)))
                {
                    tcp.Retransmissions++;
                }
            }
        }
    }

    private static string Endpoint(IPAddress address, int port, int protocol) =>
        protocol is 6 or 17 ? (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}") : address.ToString();

    private static void Count(CaptureSummary summary, string protocol) =>
        summary.Protocols[protocol] = summary.Protocols.GetValueOrDefault(protocol) + 1;
}
