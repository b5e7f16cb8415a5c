using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;
using NetWire.Core.Packets;

namespace NetWire.Devices.Pcap;

/// <summary>
/// Decodes the SPICE conversations in a capture: TCP connections whose client starts with the
/// link magic <c>REDQ</c> or whose server port is given, reassembled per direction in sequence
/// order. Each direction is read as SPICE sends it: the link header and SpiceLinkMess (or
/// SpiceLinkReply), the auth mechanism and the 128-byte ticket (client), the link result (server),
/// then data messages behind the mini or full header each side's peer agreed to (protocol.md §1, §2).
/// </summary>
/// <remarks>
/// MIGRATE_BEGIN, MIGRATE_BEGIN_SEAMLESS and MIGRATE_SWITCH_HOST are read as protocol.md §4.4
/// lays them out (pointers are offsets into the body, checked, strings NUL-terminated): tshark 4.0
/// calls them malformed. The migration timeline joins the source's main channel, the client's
/// links to the target (main links with a session id) and the target's INIT. Segments are
/// taken in sequence order; a retransmission is skipped, a segment past a gap waits (1 MiB at
/// most per direction) and a gap that never fills stops that direction with a problem.
/// </remarks>
public static class SpiceInspector
{
    private const uint Magic = 0x51444552;
    private const int LinkHeaderBytes = 16;
    private const int MaxLinkBody = 4096;
    private const int MaxMessageBody = 64 * 1024 * 1024;
    private const int MaxPending = 1024 * 1024;

    /// <summary>Reads <paramref name="path"/>; throws <see cref="CaptureFormatException"/> for a bad file.</summary>
    public static SpiceSummary Inspect(string path, int? spicePort = null)
    {
        var summary = new SpiceSummary();
        var connections = new Dictionary<(IPAddress, int, IPAddress, int), Connection>();
        using var reader = CaptureFileReader.Open(path);
        var first = true;
        while (reader.TryReadNext(out var record))
        {
            if (first)
            {
                summary.FirstNs = record.TimestampNs;
                first = false;
            }

            if (!TryTcp(reader.Data, out var source, out var destination, out var segment))
            {
                continue;
            }

            var key = (source, (int)segment.SourcePort, destination, (int)segment.DestinationPort);
            var reverse = (destination, (int)segment.DestinationPort, source, (int)segment.SourcePort);
            bool fromClient;
            if (connections.TryGetValue(key, out var connection))
            {
                fromClient = true;
            }
            else if (connections.TryGetValue(reverse, out connection))
            {
                fromClient = false;
            }
            else
            {
                var flags = segment.Flags;
                var synOnly = (flags & (TcpFlags.Syn | TcpFlags.Ack)) == TcpFlags.Syn;
                var toPort = spicePort is { } port && segment.DestinationPort == port;
                var fromPort = spicePort is { } port2 && segment.SourcePort == port2;
                if (!synOnly && !toPort && !fromPort && !StartsWithMagic(segment.Payload))
                {
                    continue;
                }

                // The client is the side that sent the SYN, or the one talking to the SPICE port.
                var clientIsSource = synOnly || toPort || (!fromPort && StartsWithMagic(segment.Payload));
                connection = new Connection(clientIsSource ? Endpoint(source, segment.SourcePort) : Endpoint(destination, segment.DestinationPort),
                    clientIsSource ? Endpoint(destination, segment.DestinationPort) : Endpoint(source, segment.SourcePort),
                    clientIsSource ? segment.DestinationPort : segment.SourcePort, record.TimestampNs);
                connections.Add(clientIsSource ? key : reverse, connection);
                fromClient = clientIsSource;
            }

            connection.OnSegment(segment, fromClient, record.TimestampNs);
        }

        foreach (var connection in connections.Values)
        {
            if (connection.IsSpice)
            {
                connection.Finish();
            }
        }

        var ordered = connections.Values.Where(static c => c.IsSpice).OrderBy(static c => c.FirstNs).ToList();
        for (var i = 0; i < ordered.Count; i++)
        {
            summary.Conversations.Add(ordered[i].ToConversation(i + 1));
        }

        SpiceTimeline.Build(summary);
        return summary;
    }

    private static bool TryTcp(ReadOnlySpan<byte> frame, out IPAddress source, out IPAddress destination, out TcpPacket segment)
    {
        source = destination = IPAddress.None;
        segment = default;
        if (!EthernetFrame.TryParse(frame, out var ethernet))
        {
            return false;
        }

        if (ethernet.EtherType == EtherType.Ipv4 && Ipv4Packet.TryParse(ethernet.Payload, out var ip) && ip.Protocol == IpProtocol.Tcp && !ip.IsFragment
            && TcpPacket.TryParse(ip.Payload, out segment))
        {
            source = Core.Net.Ip.ToAddress(ip.Source);
            destination = Core.Net.Ip.ToAddress(ip.Destination);
            return true;
        }

        var v6 = ethernet.Payload;
        if (ethernet.EtherType == EtherType.Ipv6 && v6.Length >= 40 && v6[6] == (byte)IpProtocol.Tcp)
        {
            var length = 40 + BinaryPrimitives.ReadUInt16BigEndian(v6[4..]);
            if (length <= v6.Length && TcpPacket.TryParse(v6[40..length], out segment))
            {
                source = new IPAddress(v6.Slice(8, 16));
                destination = new IPAddress(v6.Slice(24, 16));
                return true;
            }
        }

        return false;
    }

    private static bool StartsWithMagic(ReadOnlySpan<byte> payload) =>
        payload.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(payload) == Magic;

    private static string Endpoint(IPAddress address, int port) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]:{port}" : $"{address}:{port}";

    /// <summary>One TCP connection: both directions reassembled and decoded as they fill.</summary>
    private sealed class Connection(string client, string server, int serverPort, long firstNs)
    {
        private readonly Direction _toServer = new(fromClient: true);
        private readonly Direction _toClient = new(fromClient: false);

        public long FirstNs { get; } = firstNs;

        public bool IsSpice { get; private set; }

        public SpiceConversation State { get; } = new() { Index = 0, Client = client, Server = server, ServerPort = serverPort, FirstNs = firstNs };

        public void OnSegment(TcpPacket segment, bool fromClient, long timeNs)
        {
            var direction = fromClient ? _toServer : _toClient;
            direction.Accept(segment, timeNs);
            if (!IsSpice && fromClient && direction.Buffered >= 4)
            {
                IsSpice = direction.PeekMagic();
                if (!IsSpice)
                {
                    direction.Stopped = true;
                    _toClient.Stopped = true;
                    return;
                }
            }

            if (IsSpice)
            {
                Decode();
            }
        }

        public void Finish()
        {
            Decode();
            foreach (var direction in new[] { _toServer, _toClient })
            {
                if (direction.HasGap && State.Problem is null)
                {
                    State.Problem = $"{(direction.FromClient ? "client" : "server")} stream has a gap at sequence {direction.Next}: later bytes not decoded";
                }
            }
        }

        public SpiceConversation ToConversation(int index)
        {
            var conversation = new SpiceConversation
            {
                Index = index,
                Client = State.Client,
                Server = State.Server,
                ServerPort = State.ServerPort,
                FirstNs = State.FirstNs,
                ChannelType = State.ChannelType,
                ChannelId = State.ChannelId,
                ConnectionId = State.ConnectionId,
                SessionId = State.SessionId,
                ReplyError = State.ReplyError,
                LinkResult = State.LinkResult,
                ClientMini = State.ClientMini,
                ServerMini = State.ServerMini,
                Problem = State.Problem,
            };
            conversation.Messages.AddRange(State.Messages.OrderBy(static m => m.TimeNs));
            return conversation;
        }

        /// <summary>Decodes what both directions hold, alternating so the server's caps are known before the client's auth word is read.</summary>
        private void Decode()
        {
            bool progress;
            do
            {
                progress = StepClient() | StepServer();
            }
            while (progress);
        }

        private bool StepClient()
        {
            var d = _toServer;
            if (d.Stopped)
            {
                return false;
            }

            switch (d.Stage)
            {
                case Stage.LinkHeader:
                    if (!d.TryTake(LinkHeaderBytes, out var header, out var time))
                    {
                        return false;
                    }

                    var size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12));
                    if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || size is < 18 or > MaxLinkBody)
                    {
                        return Stop(d, $"client link header: magic {BinaryPrimitives.ReadUInt32LittleEndian(header):x8}, size {size}");
                    }

                    d.Expect = (int)size;
                    d.Stage = Stage.LinkBody;
                    return true;
                case Stage.LinkBody:
                    if (!d.TryTake(d.Expect, out var mess, out time))
                    {
                        return false;
                    }

                    State.ConnectionId = BinaryPrimitives.ReadUInt32LittleEndian(mess);
                    State.ChannelType = mess[4];
                    State.ChannelId = mess[5];
                    var (common, channel) = Caps(mess, 6);
                    d.Caps = common;
                    State.ServerMini = (common & 8) != 0;
                    State.Messages.Add(new SpiceMessage(time, true, 0, "link", mess.Length,
                        string.Create(CultureInfo.InvariantCulture, $"{State.Channel} connection id {State.ConnectionId:x8} caps common {common:x} channel {channel:x}")));
                    d.Stage = Stage.Auth;
                    return true;
                case Stage.Auth:
                    if (_toClient.Stage is Stage.LinkHeader or Stage.LinkBody && !_toClient.Stopped)
                    {
                        // The auth word depends on the server's caps: wait for its reply.
                        return false;
                    }

                    // protocol.md §1.6: the mechanism word when the server offered AUTH_SELECTION, then the ticket.
                    var authBytes = ((_toClient.Caps & 1) != 0 ? 4 : 0) + 128;
                    if (!d.TryTake(authBytes, out _, out time))
                    {
                        return false;
                    }

                    State.ClientMini = (_toClient.Caps & 8) != 0;
                    State.Messages.Add(new SpiceMessage(time, true, 0, "ticket", authBytes, null));
                    d.Stage = Stage.Messages;
                    return true;
                default:
                    return StepMessage(d, State.ClientMini);
            }
        }

        private bool StepServer()
        {
            var d = _toClient;
            if (d.Stopped)
            {
                return false;
            }

            switch (d.Stage)
            {
                case Stage.LinkHeader:
                    if (!d.TryTake(LinkHeaderBytes, out var header, out _))
                    {
                        return false;
                    }

                    var size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12));
                    if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || size is < 178 or > MaxLinkBody)
                    {
                        return Stop(d, $"server link header: magic {BinaryPrimitives.ReadUInt32LittleEndian(header):x8}, size {size}");
                    }

                    d.Expect = (int)size;
                    d.Stage = Stage.LinkBody;
                    return true;
                case Stage.LinkBody:
                    if (!d.TryTake(d.Expect, out var reply, out var time))
                    {
                        return false;
                    }

                    var error = BinaryPrimitives.ReadUInt32LittleEndian(reply);
                    State.ReplyError = error;
                    var (common, channel) = Caps(reply, 166);
                    d.Caps = common;
                    State.Messages.Add(new SpiceMessage(time, false, 0, "link-reply", reply.Length,
                        string.Create(CultureInfo.InvariantCulture, $"{SpiceNames.LinkError(error)} caps common {common:x} channel {channel:x}")));
                    if (error != 0)
                    {
                        d.Stopped = true;
                        _toServer.Stopped = true;
                        return true;
                    }

                    d.Stage = Stage.Auth;
                    return true;
                case Stage.Auth:
                    if (!d.TryTake(4, out var result, out time))
                    {
                        return false;
                    }

                    State.LinkResult = BinaryPrimitives.ReadUInt32LittleEndian(result);
                    State.ServerMini = (_toServer.Caps & 8) != 0;
                    State.Messages.Add(new SpiceMessage(time, false, 0, "link-result", 4, SpiceNames.LinkError(State.LinkResult.Value)));
                    d.Stage = State.LinkResult == 0 ? Stage.Messages : Stage.Done;
                    return true;
                default:
                    return StepMessage(d, State.ServerMini);
            }
        }

        /// <summary>One data message (protocol.md §2): the mini or full header, then the body.</summary>
        private bool StepMessage(Direction d, bool mini)
        {
            if (d.Stage == Stage.Done)
            {
                return false;
            }

            if (d.Stage == Stage.Messages)
            {
                var headerBytes = mini ? 6 : 18;
                if (!d.TryTake(headerBytes, out var header, out _))
                {
                    return false;
                }

                var offset = mini ? 0 : 8;
                d.MessageType = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(offset));
                var size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(offset + 2));
                if (size > MaxMessageBody)
                {
                    return Stop(d, $"{(d.FromClient ? "client" : "server")} message type {d.MessageType} claims {size} bytes");
                }

                d.Expect = (int)size;
                d.Stage = Stage.MessageBody;
                return true;
            }

            if (!d.TryTake(d.Expect, out var body, out var time))
            {
                return false;
            }

            d.Stage = Stage.Messages;
            var type = d.MessageType;
            var name = SpiceNames.Message(State.ChannelType, d.FromClient, type)
                ?? string.Create(CultureInfo.InvariantCulture, $"{SpiceNames.Channel(State.ChannelType).ToUpperInvariant()} {type}");
            string? problem = null;
            var destination = !d.FromClient && State.ChannelType == SpiceNames.Main && name is "MIGRATE_BEGIN" or "MIGRATE_BEGIN_SEAMLESS" or "MIGRATE_SWITCH_HOST"
                ? Destination(body, name == "MIGRATE_BEGIN_SEAMLESS" ? 24 : 20, name == "MIGRATE_SWITCH_HOST", out problem)
                : null;
            var detail = destination is null ? problem ?? Describe(name, d.FromClient, body) : DescribeDestination(destination);
            State.Messages.Add(new SpiceMessage(time, d.FromClient, type, name, body.Length, detail, destination));
            if (!d.FromClient && name == "INIT" && State.ChannelType == SpiceNames.Main && body.Length >= 4)
            {
                State.SessionId = BinaryPrimitives.ReadUInt32LittleEndian(body);
            }

            return true;
        }

        private bool Stop(Direction d, string problem)
        {
            State.Problem ??= problem;
            d.Stopped = true;
            return false;
        }

        private string? Describe(string name, bool fromClient, byte[] body)
        {
            if (fromClient)
            {
                return null;
            }

            return name switch
            {
                "INIT" when State.ChannelType == SpiceNames.Main => body.Length >= 32
                    ? string.Create(CultureInfo.InvariantCulture, $"session {BinaryPrimitives.ReadUInt32LittleEndian(body):x8}")
                    : "malformed: shorter than 32 bytes",
                "DISCONNECTING" => body.Length >= 12 ? SpiceNames.LinkError(BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(8))) : null,
                _ => null,
            };
        }

        /// <summary>
        /// DstInfo (protocol.md §4.4): u16 port, u16 sport, u32 host_size, u32 host_ptr, u32 subject size,
        /// u32 subject ptr, pointers being offsets into the body past its fixed part, sizes counting the NUL.
        /// Null with a problem when it is not laid out so.
        /// </summary>
        private static SpiceDestination? Destination(byte[] body, int fixedPart, bool hostMayBeAbsent, out string? problem)
        {
            problem = null;
            if (body.Length < fixedPart)
            {
                problem = $"malformed: {body.Length} bytes, shorter than its {fixedPart}-byte fixed part";
                return null;
            }

            var port = BinaryPrimitives.ReadUInt16LittleEndian(body);
            var sport = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(2));
            var hostSize = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(4));
            var host = ReadString(body, fixedPart, hostSize, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(8)));
            var subjectSize = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(12));
            var subject = ReadString(body, fixedPart, subjectSize, BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(16)));
            if ((host is null && (hostSize != 0 || !hostMayBeAbsent)) || (subject is null && subjectSize != 0))
            {
                problem = "malformed: a string pointer is outside the body or its string is not NUL-terminated";
                return null;
            }

            return new SpiceDestination(host, port, sport == 0xFFFF ? null : sport, subject);
        }

        private static string DescribeDestination(SpiceDestination destination)
        {
            var text = string.Create(CultureInfo.InvariantCulture,
                $"host {destination.Host ?? "(none)"} port {destination.Port} sport {(destination.SecurePort is { } sport ? sport.ToString(CultureInfo.InvariantCulture) : "none")}");
            return destination.Subject is { Length: > 0 } subject ? $"{text} subject {subject}" : text;
        }

        /// <summary>A string at a body offset with its size counting the NUL (protocol.md §0); null when absent or out of bounds.</summary>
        private static string? ReadString(byte[] body, int fixedPart, uint size, uint pointer)
        {
            if (size == 0 || pointer == 0 || pointer < fixedPart || (ulong)pointer + size > (ulong)body.Length || body[pointer + size - 1] != 0)
            {
                return null;
            }

            return Encoding.UTF8.GetString(body, (int)pointer, (int)size - 1);
        }

        private static (uint Common, uint Channel) Caps(byte[] body, int countsOffset)
        {
            if (body.Length < countsOffset + 12)
            {
                return (0, 0);
            }

            var common = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(countsOffset));
            var channel = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(countsOffset + 4));
            var offset = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(countsOffset + 8));
            uint Word(ulong at) => at + 4 <= (ulong)body.Length ? BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan((int)at)) : 0;
            return (common > 0 ? Word(offset) : 0, channel > 0 ? Word(offset + (4UL * common)) : 0);
        }
    }

    private enum Stage
    {
        LinkHeader,
        LinkBody,
        Auth,
        Messages,
        MessageBody,
        Done,
    }

    /// <summary>One direction's byte stream, reassembled in sequence order.</summary>
    private sealed class Direction(bool fromClient)
    {
        private readonly List<(long Time, byte[] Bytes)> _ready = [];
        private readonly SortedDictionary<uint, (long Time, byte[] Bytes)> _pending = [];
        private int _readyOffset;
        private int _pendingBytes;
        private bool _started;

        public bool FromClient { get; } = fromClient;

        public uint Next { get; private set; }

        public Stage Stage { get; set; }

        public int Expect { get; set; }

        public ushort MessageType { get; set; }

        public uint Caps { get; set; }

        public bool Stopped { get; set; }

        public bool HasGap => _pending.Count > 0;

        public int Buffered { get; private set; }

        /// <summary>When the last bytes taken arrived (the time of an empty body is its header's).</summary>
        public long LastTime { get; private set; }

        public void Accept(TcpPacket segment, long timeNs)
        {
            var seq = segment.SequenceNumber;
            var payload = segment.Payload;
            if ((segment.Flags & TcpFlags.Syn) != 0)
            {
                Next = seq + 1;
                _started = true;
                return;
            }

            if (payload.IsEmpty || Stopped)
            {
                return;
            }

            if (!_started)
            {
                // Captured mid-connection: start at the first data seen.
                Next = seq;
                _started = true;
            }

            var ahead = (int)(seq - Next);
            if (ahead < 0)
            {
                // A retransmission, or one overlapping what was taken.
                var skip = -ahead;
                if (skip >= payload.Length)
                {
                    return;
                }

                payload = payload[skip..];
                seq = Next;
                ahead = 0;
            }

            if (ahead > 0)
            {
                if (_pendingBytes + payload.Length <= MaxPending && !_pending.ContainsKey(seq))
                {
                    _pending.Add(seq, (timeNs, payload.ToArray()));
                    _pendingBytes += payload.Length;
                }

                return;
            }

            Append(timeNs, payload.ToArray());
            while (_pending.Count > 0)
            {
                var (key, value) = _pending.First();
                var offset = (int)(Next - key);
                if (offset < 0)
                {
                    break;
                }

                _pending.Remove(key);
                _pendingBytes -= value.Bytes.Length;
                if (offset < value.Bytes.Length)
                {
                    Append(value.Time, value.Bytes[offset..]);
                }
            }
        }

        public bool PeekMagic()
        {
            var head = new byte[4];
            var copied = 0;
            for (var i = 0; i < _ready.Count && copied < 4; i++)
            {
                var bytes = _ready[i].Bytes;
                var start = i == 0 ? _readyOffset : 0;
                var n = Math.Min(4 - copied, bytes.Length - start);
                Array.Copy(bytes, start, head, copied, n);
                copied += n;
            }

            return copied == 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Magic;
        }

        /// <summary>Takes <paramref name="count"/> bytes when they are all there, with the time of the segment that completed them.</summary>
        public bool TryTake(int count, out byte[] bytes, out long timeNs)
        {
            bytes = [];
            timeNs = LastTime;
            if (Buffered < count)
            {
                return false;
            }

            bytes = new byte[count];
            var copied = 0;
            while (copied < count)
            {
                var (time, chunk) = _ready[0];
                var n = Math.Min(count - copied, chunk.Length - _readyOffset);
                Array.Copy(chunk, _readyOffset, bytes, copied, n);
                copied += n;
                _readyOffset += n;
                timeNs = time;
                if (_readyOffset == chunk.Length)
                {
                    _ready.RemoveAt(0);
                    _readyOffset = 0;
                }
            }

            Buffered -= count;
            LastTime = timeNs;
            return true;
        }

        private void Append(long timeNs, byte[] bytes)
        {
            _ready.Add((timeNs, bytes));
            Buffered += bytes.Length;
            Next += (uint)bytes.Length;
        }
    }
}
