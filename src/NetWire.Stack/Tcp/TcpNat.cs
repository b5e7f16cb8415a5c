using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Tcp;

/// <summary>
/// The TCP connection table: demultiplexes guest segments, opens connections on SYN (after the
/// policy, half-open and table limits), answers segments for unknown flows with RST, and drives
/// timers. Host forwards open connections the other way (<see cref="OpenToGuest"/>).
/// </summary>
internal sealed class TcpNat(Gateway gateway)
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Psh = 0x08;
    public const byte AckFlag = 0x10;

    private readonly Dictionary<FlowKeyTcp, TcpConnection> _connections = [];
    private readonly List<TcpConnection> _scan = [];
    private ushort _nextForwardPort = 49152;

    /// <summary>Connections still in the handshake (host connect pending, or SYN-ACK/SYN unanswered).</summary>
    public int HalfOpen { get; set; }

    public int Count => _connections.Count;

    /// <summary>Every connection's <see cref="TcpConnection.Describe"/>, one per line. Caller holds the gateway lock.</summary>
    public string Describe() => string.Join("\n", _connections.Values.Select(static c => c.Describe()));

    /// <summary>One TCP segment from the guest. Caller holds the gateway lock.</summary>
    public void OnSegment(uint source, uint destination, ReadOnlySpan<byte> tcp)
    {
        if (tcp.Length < 20)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var headerLength = (tcp[12] >> 4) * 4;
        if (headerLength < 20 || headerLength > tcp.Length)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!Checksum.IsValid(Checksum.Add(Checksum.AddPseudoHeader(0, source, destination, Gateway.ProtocolTcp, tcp.Length), tcp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        var segment = new TcpSegment(
            BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]),
            tcp[13],
            BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]));
        var key = new FlowKeyTcp(source, BinaryPrimitives.ReadUInt16BigEndian(tcp), destination, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
        var data = tcp[headerLength..];
        if (_connections.TryGetValue(key, out var connection))
        {
            connection.OnSegment(segment, tcp[20..headerLength], data);
            return;
        }

        if ((segment.Flags & (Syn | AckFlag | Rst)) == Syn)
        {
            OnSyn(key, segment, tcp[20..headerLength]);
            return;
        }

        gateway.Counters.Drop(StackDrop.UnknownFlow);
        if ((segment.Flags & Rst) == 0)
        {
            // RFC 9293 3.10.7.1: a segment for a closed connection gets a RST.
            var length = (uint)data.Length + ((segment.Flags & Syn) != 0 ? 1u : 0u) + ((segment.Flags & Fin) != 0 ? 1u : 0u);
            if ((segment.Flags & AckFlag) != 0)
            {
                SendReset(key, segment.Ack, 0, Rst);
            }
            else
            {
                SendReset(key, 0, segment.Seq + length, Rst | AckFlag);
            }
        }
    }

    private void OnSyn(FlowKeyTcp key, TcpSegment segment, ReadOnlySpan<byte> options)
    {
        if (!TcpOptions.TryParse(options, out var parsed))
        {
            gateway.Counters.Drop(StackDrop.BadOptions);
            return;
        }

        var virtualServices = gateway.Options.VirtualServices;
        var isVirtual = virtualServices?.IsVirtualAddress(key.RemoteIp) == true;
        var address = IPAddress.None;
        if (!isVirtual && !gateway.TryMapDestination(key.RemoteIp, out address, out var refusal))
        {
            gateway.Counters.Drop(refusal);
            SendReset(key, 0, segment.Seq + 1, Rst | AckFlag);
            return;
        }

        if (HalfOpen >= gateway.Options.MaxHalfOpen)
        {
            // Silently: the guest retries, and a flood gets no amplification.
            gateway.Counters.Drop(StackDrop.SynFlood);
            return;
        }

        if (_connections.Count >= gateway.Options.MaxTcpConnections && !EvictTimeWait())
        {
            gateway.Counters.Drop(StackDrop.ConnectionLimit);
            SendReset(key, 0, segment.Seq + 1, Rst | AckFlag);
            return;
        }

        var connection = new TcpConnection(gateway, this, key);
        _connections.Add(key, connection);
        HalfOpen++;
        if (isVirtual)
        {
            connection.StartPassive(segment.Seq, parsed, cancellationToken => virtualServices!.ConnectAsync(key.GuestIp, key.GuestPort, key.RemoteIp, key.RemotePort, cancellationToken));
            return;
        }

        connection.StartPassive(segment.Seq, parsed, new IPEndPoint(address, key.RemotePort));
    }

    /// <summary>A host client connected to a forwarded port: open a connection to the guest. Caller holds the gateway lock.</summary>
    public void OpenToGuest(Socket accepted, ushort guestPort)
    {
        var guestIp = gateway.GuestIp;
        if (guestIp == 0 || _connections.Count >= gateway.Options.MaxTcpConnections || HalfOpen >= gateway.Options.MaxHalfOpen)
        {
            gateway.Counters.Drop(guestIp == 0 ? StackDrop.BadAddress : StackDrop.ConnectionLimit);
            accepted.Dispose();
            return;
        }

        FlowKeyTcp key;
        var attempts = 0;
        do
        {
            _nextForwardPort = _nextForwardPort == ushort.MaxValue ? (ushort)49152 : (ushort)(_nextForwardPort + 1);
            key = new FlowKeyTcp(guestIp, guestPort, gateway.GatewayIp, _nextForwardPort);
        }
        while (_connections.ContainsKey(key) && ++attempts < 16384);

        var connection = new TcpConnection(gateway, this, key);
        _connections.Add(key, connection);
        HalfOpen++;
        connection.StartActive(accepted);
    }

    /// <summary>Takes a connection out of the table (it has closed or aborted).</summary>
    public void Remove(TcpConnection connection)
    {
        _connections.Remove(connection.Key);
    }

    private bool EvictTimeWait()
    {
        foreach (var connection in _connections.Values)
        {
            if (connection.InTimeWait)
            {
                connection.Release();
                return true;
            }
        }

        return false;
    }

    /// <summary>Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs)
    {
        _scan.AddRange(_connections.Values);
        foreach (var connection in _scan)
        {
            connection.OnTimer(nowMs);
        }

        _scan.Clear();
    }

    public void CloseAll()
    {
        _scan.AddRange(_connections.Values);
        foreach (var connection in _scan)
        {
            connection.Release();
        }

        _scan.Clear();
        _connections.Clear();
    }

    /// <summary>A bare RST (or RST|ACK) for a flow with no connection.</summary>
    public void SendReset(FlowKeyTcp key, uint seq, uint ack, byte flags)
    {
        var frame = gateway.RentIpv4(20);
        var tcp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        WriteHeader(tcp, key, seq, ack, flags, 0, 20);
        FinishChecksum(tcp, key);
        gateway.EmitIpv4(frame, Gateway.ProtocolTcp, key.RemoteIp, key.GuestIp);
    }

    /// <summary>Writes a TCP header from the remote side of <paramref name="key"/> to the guest.</summary>
    public static void WriteHeader(Span<byte> tcp, FlowKeyTcp key, uint seq, uint ack, byte flags, ushort window, int headerLength)
    {
        BinaryPrimitives.WriteUInt16BigEndian(tcp, key.RemotePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], key.GuestPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], ack);
        tcp[12] = (byte)(headerLength / 4 << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], window);
        tcp[16] = 0;
        tcp[17] = 0;
        tcp[18] = 0;
        tcp[19] = 0;
    }

    /// <summary>Computes the checksum of a complete segment in place.</summary>
    public static void FinishChecksum(Span<byte> tcp, FlowKeyTcp key)
    {
        var sum = Checksum.AddPseudoHeader(0, key.RemoteIp, key.GuestIp, Gateway.ProtocolTcp, tcp.Length);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Finish(Checksum.Add(sum, tcp)));
    }
}

/// <summary>A TCP connection as the guest sees it.</summary>
internal readonly record struct FlowKeyTcp(uint GuestIp, ushort GuestPort, uint RemoteIp, ushort RemotePort);

/// <summary>The fixed fields of a received segment.</summary>
internal readonly record struct TcpSegment(uint Seq, uint Ack, byte Flags, ushort Window);

/// <summary>The SYN options the gateway uses (RFC 9293 3.7.1 MSS, RFC 7323 2 window scale).</summary>
internal readonly record struct TcpOptions(int Mss, int WindowScale)
{
    /// <summary>Parses options; false when one runs past the header or has a bad length.</summary>
    public static bool TryParse(ReadOnlySpan<byte> options, out TcpOptions parsed)
    {
        var mss = 536;
        var scale = -1;
        while (options.Length > 0)
        {
            var kind = options[0];
            if (kind == 0)
            {
                break;
            }

            if (kind == 1)
            {
                options = options[1..];
                continue;
            }

            if (options.Length < 2 || options[1] < 2 || options[1] > options.Length)
            {
                parsed = default;
                return false;
            }

            var value = options.Slice(2, options[1] - 2);
            if (kind == 2 && value.Length == 2)
            {
                mss = Math.Max(64, (int)BinaryPrimitives.ReadUInt16BigEndian(value));
            }
            else if (kind == 3 && value.Length == 1)
            {
                scale = Math.Min((int)value[0], 14);
            }

            options = options[options[1]..];
        }

        parsed = new TcpOptions(mss, scale);
        return true;
    }
}
