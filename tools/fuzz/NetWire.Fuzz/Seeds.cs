using System.Buffers.Binary;
using System.Net;
using System.Text;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.State;
using NetWire.Devices.Pcap;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;
using NetWire.Tunnel;

namespace NetWire.Fuzz;

/// <summary>
/// Writes the starting corpora (tools/fuzz/corpus/TARGET/, checked in): frames from the
/// captures/ fixtures, and well-formed messages of every kind the targets take, built the way
/// the tests build them. afl-fuzz mutates from these.
/// </summary>
internal static class Seeds
{
    public static void Write(string root, string captures)
    {
        var guestFrames = new List<byte[]>();
        var allFrames = new List<byte[]>();
        foreach (var file in Directory.GetFiles(captures, "*.pcapng").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            var frames = ReadFrames(file, out var fromGuest);
            allFrames.AddRange(frames);
            guestFrames.AddRange(fromGuest);
            // Small seeds fuzz faster: a dozen frames carry every header kind a capture shows.
            Save(root, "gateway", name, LengthPrefixed((fromGuest.Count > 0 ? fromGuest : frames).Take(12), 2));
            Save(root, "framing", name, LengthPrefixed(frames.Take(8), 4));
            if (new FileInfo(file).Length <= 2_000)
            {
                Save(root, "pcap", name + ".pcapng", File.ReadAllBytes(file));
            }
        }

        Save(root, "gateway", "tftp", LengthPrefixed(TftpFrames(), 2));
        Save(root, "pcap", "classic-usec.pcap", ClassicPcap(guestFrames.Take(4)));
        Save(root, "framing", "one-short-frame", LengthPrefixed([new byte[14]], 4));

        Save(root, "spice-link", "main-mini", LinkMess(0, 1, 0x0D, [0x0F], withTicket: true));
        Save(root, "spice-link", "main-no-auth-selection", LinkMess(0, 1, 0x08, [0x0F], withTicket: true));
        Save(root, "spice-link", "tunnel", LinkMess(7, 7, 0x0D, [], withTicket: true));
        Save(root, "spice-link", "header-only", LinkMess(0, 1, 0x0D, [0x0F], withTicket: false)[..16]);

        Save(root, "spice-main", "attach-pong-mouse", [1, .. Mini(104, []), .. Mini(3, new byte[12]), .. Mini(105, [1, 0, 0, 0]), .. Mini(6, new byte[16])]);
        Save(root, "spice-main", "agent-full-header", [0, .. Full(1, 106, [0, 0, 0, 0]), .. Full(2, 107, new byte[40]), .. Full(3, 108, [1, 0, 0, 0])]);
        Save(root, "spice-main", "migrate-answers", [1, .. Mini(102, []), .. Mini(103, []), .. Mini(109, []), .. Mini(101, new byte[8])]);

        var service = TunnelMessages.BuildServiceAdd(new TunnelService(TunnelMessages.ServiceGeneric, 1, 1, 80, "web", "web", 0));
        var printer = TunnelMessages.BuildServiceAdd(new TunnelService(TunnelMessages.ServiceIpp, 2, 2, 631, "print", "printer", 0x0100007F));
        Save(root, "spice-tunnel", "service-add", [1, .. Mini(TunnelMessages.ServiceAdd, service), .. Mini(TunnelMessages.ServiceAdd, printer), .. Mini(TunnelMessages.ServiceRemove, [1, 0, 0, 0])]);
        Save(root, "spice-tunnel", "socket-messages", [1, .. Mini(TunnelMessages.SocketOpenAck, [0, 0, 32, 0, 0, 0]), .. Mini(TunnelMessages.ClientSocketData, [0, 0, (byte)'h', (byte)'i']),
            .. Mini(TunnelMessages.ClientSocketToken, [0, 0, 8, 0, 0, 0]), .. Mini(TunnelMessages.ClientSocketFin, [0, 0]), .. Mini(TunnelMessages.SocketClosed, [0, 0])]);

        Save(root, "qmp", "session", Encoding.UTF8.GetBytes(
            "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-commands\",\"id\":1}\n{\"execute\":\"query-spice\"}\n" +
            "{\"execute\":\"set_password\",\"arguments\":{\"protocol\":\"spice\",\"password\":\"x\"}}\n" +
            "{\"execute\":\"expire_password\",\"arguments\":{\"protocol\":\"spice\",\"time\":\"+60\"}}\n{\"execute\":\"query-wire\"}\n"));
        Save(root, "qmp", "errors", Encoding.UTF8.GetBytes("{\"execute\":\"query-spice\"}\n[1,2]\n{\"execute\":1}\n{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}\n\n"));

        Save(root, "state", "empty", StateStream.Build([]));
        Save(root, "state", "sections", StateStream.Build([new RawSection("dhcp", [1, 0, 1, 0, 0, 0, 10, 0, 2, 15, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0x0e, 0x10]),
            new RawSection("wire", [1, 0, 2, 0, 0, 0, 5, (byte)'g', (byte)'u', (byte)'e', (byte)'s', (byte)'t']), new RawSection("spice", [1, 0, 0, 0, 0, 0])]));
        Save(root, "state", "gateway-flows", StateStream.Build([new RawSection("gateway.flows", GatewayFlows())]));
    }

    private static List<byte[]> ReadFrames(string file, out List<byte[]> fromGuest)
    {
        var frames = new List<byte[]>();
        fromGuest = [];
        using var reader = CaptureFileReader.Open(file);
        while (reader.TryReadNext(out var record))
        {
            var frame = reader.Data.ToArray();
            frames.Add(frame);
            if ((record.Flags & 3) == 1)
            {
                fromGuest.Add(frame);
            }
        }

        return frames;
    }

    /// <summary>
    /// What a PXE guest's TFTP client sends the gateway (the captures hold none): a read request
    /// with every option the server takes, the ACKs of a windowed transfer, an error, a traversal
    /// attempt and a write request. The fuzz target serves a folder with the file asked for.
    /// </summary>
    private static IEnumerable<byte[]> TftpFrames()
    {
        static byte[] Tftp(ushort opcode, params string[] fields)
        {
            var bytes = new List<byte> { (byte)(opcode >> 8), (byte)opcode };
            foreach (var field in fields)
            {
                bytes.AddRange(Encoding.ASCII.GetBytes(field));
                bytes.Add(0);
            }

            return [.. bytes];
        }

        static byte[] Block(ushort opcode, ushort number) => [(byte)(opcode >> 8), (byte)opcode, (byte)(number >> 8), (byte)number];

        const ushort Port = 1069;
        yield return GuestUdp(Port, 69, Tftp(1, Targets.TftpFile, "octet", "blksize", "1432", "tsize", "0", "windowsize", "4"));
        yield return GuestUdp(Port, 69, Block(4, 0));
        yield return GuestUdp(Port, 69, Block(4, 2));
        yield return GuestUdp(Port, 69, [.. Block(5, 0), .. Encoding.ASCII.GetBytes("aborted"), 0]);
        yield return GuestUdp(Port + 1, 69, Tftp(1, "../" + Targets.TftpFile, "netascii"));
        yield return GuestUdp(Port + 2, 69, Tftp(2, "upload", "octet"));
    }

    /// <summary>A UDP datagram from the guest (10.0.2.15, its usual lease) to the gateway (10.0.2.2), as one Ethernet frame.</summary>
    private static byte[] GuestUdp(ushort sourcePort, ushort destinationPort, byte[] data)
    {
        const uint Guest = 0x0A00020F, Gateway = 0x0A000202;
        var udp = new byte[UdpPacket.HeaderLength + data.Length];
        data.CopyTo(udp.AsSpan(UdpPacket.HeaderLength));
        new UdpHeader(sourcePort, destinationPort).WriteTo(udp, PseudoHeader.Ipv4(Guest, Gateway, IpProtocol.Udp));
        var frame = new byte[EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + udp.Length];
        new EthernetHeader(NetWire.Stack.Gateway.GatewayMac, new MacAddress(0x5254_0012_3456), EtherType.Ipv4).WriteTo(frame);
        new Ipv4Header(Guest, Gateway, IpProtocol.Udp, udp.Length).WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        udp.CopyTo(frame.AsSpan(EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength));
        return frame;
    }

    private static byte[] LengthPrefixed(IEnumerable<byte[]> frames, int prefix)
    {
        var output = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var frame in frames)
        {
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)frame.Length);
            output.Write(length[(4 - prefix)..]);
            output.Write(frame);
        }

        return output.ToArray();
    }

    private static byte[] ClassicPcap(IEnumerable<byte[]> frames)
    {
        var output = new MemoryStream();
        var header = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xA1B2C3D4);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), 1);
        output.Write(header);
        var second = 0u;
        foreach (var frame in frames)
        {
            var record = new byte[16];
            BinaryPrimitives.WriteUInt32LittleEndian(record, ++second);
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), (uint)frame.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12), (uint)frame.Length);
            output.Write(record);
            output.Write(frame);
        }

        return output.ToArray();
    }

    /// <summary>REDQ header, SpiceLinkMess (protocol.md §1), then the auth mechanism word and a 128-byte ticket.</summary>
    private static byte[] LinkMess(byte channelType, byte channelId, uint commonCaps, uint[] channelCaps, bool withTicket)
    {
        var body = new byte[18 + (4 * (1 + channelCaps.Length))];
        BinaryPrimitives.WriteUInt32LittleEndian(body, 0);
        body[4] = channelType;
        body[5] = channelType == 1 ? (byte)0 : channelId;
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(6), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(10), (uint)channelCaps.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(14), 18);
        BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(18), commonCaps);
        for (var i = 0; i < channelCaps.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body.AsSpan(22 + (4 * i)), channelCaps[i]);
        }

        var header = new byte[16];
        "REDQ"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)body.Length);
        return withTicket ? [.. header, .. body, 1, 0, 0, 0, .. new byte[128]] : [.. header, .. body];
    }

    private static byte[] Mini(ushort type, byte[] body)
    {
        var header = new byte[6];
        BinaryPrimitives.WriteUInt16LittleEndian(header, type);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(2), (uint)body.Length);
        return [.. header, .. body];
    }

    private static byte[] Full(ulong serial, ushort type, byte[] body)
    {
        var header = new byte[18];
        BinaryPrimitives.WriteUInt64LittleEndian(header, serial);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), type);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(10), (uint)body.Length);
        return [.. header, .. body];
    }

    /// <summary>A gateway.flows section as a source writes it: one TCP flow with its host socket, one to reset, one DNS flow.</summary>
    private static byte[] GatewayFlows()
    {
        var guest = IpAddr.FromIpv4(0x0A00020F);
        var gateway = IpAddr.FromIpv4(0x0A000202);
        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        writer.WriteByte(1);
        writer.WriteInt64(0x525400123456);
        writer.WriteUInt32(0x0A00020F);
        writer.WriteUInt16(0);
        writer.WriteUInt16(0);
        writer.WriteUInt32(1);
        new NetWire.Stack.Migration.TcpFlowState
        {
            Key = new FlowKey(guest, 40000, gateway, 8080),
            Iss = 900,
            SndUna = 1000,
            SndNxt = 1004,
            SndMax = 1004,
            SndWnd = 65535,
            SendShift = 7,
            ReceiveShift = 7,
            Mss = 1460,
            RcvNxt = 5000,
            RtoMs = 200,
            ToGuest = [1, 2, 3, 4],
            ToHost = [5, 6],
            Host = new TcpRepairState { Local = new IPEndPoint(IPAddress.Loopback, 50000), Remote = new IPEndPoint(IPAddress.Loopback, 8080), Mss = 1460, SendQueue = [7, 8], Unsent = 1 },
        }.Write(writer);
        writer.WriteUInt32(1);
        new ResetFlowState(new FlowKey(guest, 40001, gateway, 8081), 7, 9, FlowResetReason.Handshake).Write(writer);
        writer.WriteUInt32(1);
        new DatagramFlowState(new FlowKey(guest, 5353, IpAddr.FromIpv4(0x0A000203), 53), false, new IPEndPoint(IPAddress.Any, 40001), new IPEndPoint(IPAddress.Loopback, 53), true, 100).Write(writer);
        return writer.Written.ToArray();
    }

    private static void Save(string root, string target, string name, byte[] bytes)
    {
        var dir = Path.Combine(root, target);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, name), bytes);
    }

    /// <summary>A section with fixed bytes, for a stream whose sections the target's registry then reads.</summary>
    private sealed class RawSection(string name, byte[] data) : IStateSection
    {
        public string Name => name;

        public void Write(StateSectionWriter writer)
        {
            foreach (var b in data)
            {
                writer.WriteByte(b);
            }
        }

        public Action Read(StateSectionReader reader) => throw new NotSupportedException();
    }
}
