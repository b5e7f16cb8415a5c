using System.Net;
using NetWire.Core.Packets;
using LinkLayers = PacketDotNet.LinkLayers;
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
/// Dissects every frame of a capture with the packet views of <c>NetWire.Core.Packets</c>:
/// protocols, 5-tuple flows with TCP events, malformed frames. Files are read with <see cref="CaptureFileReader"/>, so a bad file gives the
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
            Dissect(summary, record, data);
        }

        summary.Interfaces = reader.Interfaces.Count;
        foreach (var link in reader.Interfaces)
        {
            summary.LinkTypes.Add(link.LinkType);
        }

        return summary;
    }

    private static void Dissect(CaptureSummary summary, CaptureRecord record, ReadOnlySpan<byte> bytes)
    {
        if (!EthernetFrame.TryParse(bytes, out var ethernet))
        {
            Count(summary, "runt");
            summary.Malformed.Add((record.Number, $"{bytes.Length} bytes, shorter than an Ethernet header"));
            return;
        }

        switch (ethernet.EtherType)
        {
            case EtherType.Arp:
                Count(summary, "ARP");
                if (ethernet.Payload.Length < ArpPacket.Length)
                {
                    summary.Malformed.Add((record.Number, $"ARP packet of {ethernet.Payload.Length} bytes, shorter than 28"));
                }

                return;
            case EtherType.Ipv4:
                DissectIpv4(summary, record, bytes.Length, ethernet.Payload);
                return;
            case EtherType.Ipv6:
                DissectIpv6(summary, record, bytes.Length, ethernet.Payload);
                return;
            default:
                Count(summary, $"0x{(ushort)ethernet.EtherType:x4}");
                return;
        }
    }

    private static void DissectIpv4(CaptureSummary summary, CaptureRecord record, int frameLength, ReadOnlySpan<byte> bytes)
    {
        if (!Ipv4Packet.TryParseQuoted(bytes, out var header))
        {
            Count(summary, "IPv4/malformed");
            summary.Malformed.Add((record.Number, "IPv4 header shorter than 20 bytes or bad version/IHL"));
            return;
        }

        if (!Ipv4Packet.TryParse(bytes, out var packet))
        {
            Count(summary, "IPv4/malformed");
            summary.Malformed.Add((record.Number, $"IPv4 total length {header.TotalLength} does not fit the {bytes.Length} bytes after the Ethernet header"));
            return;
        }

        if (packet.FragmentOffset != 0)
        {
            // A later fragment: no transport header to read.
            Count(summary, "IPv4/fragment");
            return;
        }

        DissectTransport(summary, record, frameLength, "IPv4", Core.Net.Ip.ToAddress(packet.Source), Core.Net.Ip.ToAddress(packet.Destination), (int)packet.Protocol, packet.Payload);
    }

    private static void DissectIpv6(CaptureSummary summary, CaptureRecord record, int frameLength, ReadOnlySpan<byte> bytes)
    {
        if (!Ipv6Packet.TryParseQuoted(bytes, out var header))
        {
            Count(summary, "IPv6/malformed");
            summary.Malformed.Add((record.Number, "IPv6 header shorter than 40 bytes or not version 6"));
            return;
        }

        if (!Ipv6Packet.TryParse(bytes, out var packet))
        {
            Count(summary, "IPv6/malformed");
            summary.Malformed.Add((record.Number, $"IPv6 payload length {header.PayloadLength} does not fit the {bytes.Length - Ipv6Packet.HeaderLength} bytes captured"));
            return;
        }

        // RFC 8200 4: over the extension headers to the upper layer.
        var chain = packet.GetHeaderChain();
        var laterFragment = false;
        while (chain.MoveNext())
        {
            laterFragment |= chain.Current.Type == IpProtocol.Ipv6Fragment && chain.Current.FragmentOffset != 0;
        }

        if (chain.IsMalformed)
        {
            Count(summary, "IPv6/malformed");
            summary.Malformed.Add((record.Number, $"IPv6 extension header {(int)chain.UpperProtocol} runs past the payload"));
            return;
        }

        if (laterFragment)
        {
            // A later fragment: no transport header to read.
            Count(summary, "IPv6/fragment");
            return;
        }

        DissectTransport(summary, record, frameLength, "IPv6", packet.Source.ToIPAddress(), packet.Destination.ToIPAddress(), (int)chain.UpperProtocol, chain.UpperPayload);
    }

    private static void DissectTransport(CaptureSummary summary, CaptureRecord record, int frameLength, string family, IPAddress source, IPAddress destination, int protocol, ReadOnlySpan<byte> l4)
    {
        var name = protocol switch { 6 => "TCP", 17 => "UDP", 1 => "ICMP", 58 => "ICMPv6", _ => protocol.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        Count(summary, $"{family}/{name}");
        int sourcePort = 0, destinationPort = 0;
        var segment = default(TcpPacket);
        if (protocol == (int)IpProtocol.Tcp)
        {
            if (!TcpPacket.TryParse(l4, out segment))
            {
                summary.Malformed.Add((record.Number, $"{name} header does not fit the {l4.Length} bytes of the IP payload"));
                return;
            }

            (sourcePort, destinationPort) = (segment.SourcePort, segment.DestinationPort);
        }
        else if (protocol == (int)IpProtocol.Udp)
        {
            if (!UdpPacket.TryParse(l4, out var datagram))
            {
                summary.Malformed.Add((record.Number, l4.Length < UdpPacket.HeaderLength
                    ? $"{name} header does not fit the {l4.Length} bytes of the IP payload"
                    : $"{name} length field does not fit the {l4.Length} bytes of the IP payload"));
                return;
            }

            (sourcePort, destinationPort) = (datagram.SourcePort, datagram.DestinationPort);
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
        flow.Bytes += frameLength;
        flow.LastNs = Math.Max(flow.LastNs, record.TimestampNs);
        if (flow.Tcp is { } tcp)
        {
            var flags = segment.Flags;
            var syn = (flags & TcpFlags.Syn) != 0;
            var ack = (flags & TcpFlags.Ack) != 0;
            var rst = (flags & TcpFlags.Rst) != 0;
            tcp.Syn += syn && !ack ? 1 : 0;
            tcp.SynAck += syn && ack ? 1 : 0;
            tcp.Fin += (flags & TcpFlags.Fin) != 0 ? 1 : 0;
            tcp.Rst += rst ? 1 : 0;
            tcp.ZeroWindows += segment.Window == 0 && !rst ? 1 : 0;
            if (segment.Payload.Length > 0 && !tcp.DataSeen.Add((forward, segment.SequenceNumber)))
            {
                tcp.Retransmissions++;
            }
        }
    }

    private static string Endpoint(IPAddress address, int port, int protocol) =>
        protocol is 6 or 17 ? (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}") : address.ToString();

    private static void Count(CaptureSummary summary, string protocol) =>
        summary.Protocols[protocol] = summary.Protocols.GetValueOrDefault(protocol) + 1;
}
