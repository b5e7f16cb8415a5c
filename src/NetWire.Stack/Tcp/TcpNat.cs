using System.Net;
using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Tcp;

/// <summary>
/// The TCP connection table: demultiplexes guest segments, opens connections on SYN (after the
/// policy, half-open and table limits), answers segments for unknown flows with RST, and drives
/// timers. Host forwards open connections the other way (<see cref="OpenToGuest"/>).
/// </summary>
internal sealed class TcpNat(Gateway gateway)
{
    private readonly Dictionary<FlowKey, TcpConnection> _connections = [];
    private readonly List<TcpConnection> _scan = [];
    private ushort _nextForwardPort = 49152;

    /// <summary>Connections still in the handshake (host connect pending, or SYN-ACK/SYN unanswered).</summary>
    public int HalfOpen { get; set; }

    public int Count => _connections.Count;

    /// <summary>The next port a host forward's connection comes from (a migration carries it). Caller holds the gateway lock.</summary>
    public ushort NextForwardPort
    {
        get => _nextForwardPort;
        set => _nextForwardPort = value < 49152 ? (ushort)49152 : value;
    }

    /// <summary>The connections now (a copy). Caller holds the gateway lock.</summary>
    public List<TcpConnection> Connections => [.. _connections.Values];

    /// <summary>The connection of <paramref name="key"/>, or null. Caller holds the gateway lock.</summary>
    public TcpConnection? Find(FlowKey key) => _connections.GetValueOrDefault(key);

    /// <summary>Adds a migrated connection; false when its key is taken or the table is full. Caller holds the gateway lock.</summary>
    public bool TryAdd(TcpConnection connection) =>
        _connections.Count < gateway.Options.MaxTcpConnections && _connections.TryAdd(connection.Key, connection);

    /// <summary>True when a connection has <paramref name="key"/>. Caller holds the gateway lock.</summary>
    public bool Contains(FlowKey key) => _connections.ContainsKey(key);

    /// <summary>Starts the loops a freeze stopped. Caller holds the gateway lock.</summary>
    public void ResumeAll()
    {
        _scan.AddRange(_connections.Values);
        foreach (var connection in _scan)
        {
            connection.Resume();
        }

        _scan.Clear();
    }

    /// <summary>Bytes of ring buffer all connections hold now. Caller holds the gateway lock.</summary>
    public long BufferBytes
    {
        get
        {
            long total = 0;
            foreach (var connection in _connections.Values)
            {
                total += connection.BufferBytes;
            }

            return total;
        }
    }

    /// <summary>Every connection's <see cref="TcpConnection.Describe"/>, one per line. Caller holds the gateway lock.</summary>
    public string Describe() => string.Join("\n", _connections.Values.Select(static c => c.Describe()));

    /// <summary>One TCP segment from the guest. Caller holds the gateway lock.</summary>
    public void OnSegment(IpAddr source, IpAddr destination, ReadOnlySpan<byte> bytes)
    {
        if (!TcpPacket.TryParse(bytes, out var segment))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!gateway.TransportChecksumTrusted && !segment.IsChecksumValid(PseudoHeader.Create(source, destination, IpProtocol.Tcp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        var key = new FlowKey(source, segment.SourcePort, destination, segment.DestinationPort);
        var flags = segment.Flags;
        if (_connections.TryGetValue(key, out var connection))
        {
            if ((flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) != TcpFlags.Syn || !connection.TakesNewSyn(segment.SequenceNumber))
            {
                connection.OnSegment(segment);
                return;
            }

            // RFC 9293 3.10.7.4: a new SYN beyond the old sequence space reopens from TIME-WAIT. The
            // gateway closed first, so the guest's side is gone and may reuse the port at once;
            // ignored, its SYN would wait a retransmission (a second) for the TIME-WAIT to end.
            connection.Release();
        }

        if ((flags & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn)
        {
            OnSyn(key, segment);
            return;
        }

        gateway.Counters.Drop(StackDrop.UnknownFlow);
        if ((flags & TcpFlags.Rst) == 0)
        {
            // RFC 9293 3.10.7.1: a segment for a closed connection gets a RST.
            if ((flags & TcpFlags.Ack) != 0)
            {
                SendReset(key, segment.AckNumber, 0, TcpFlags.Rst);
            }
            else
            {
                SendReset(key, 0, segment.SequenceNumber + (uint)segment.SegmentLength, TcpFlags.Rst | TcpFlags.Ack);
            }
        }
    }

    private void OnSyn(FlowKey key, TcpPacket segment)
    {
        if (!TcpOptions.TryParse(segment.Options, out var parsed))
        {
            gateway.Counters.Drop(StackDrop.BadOptions);
            return;
        }

        // Guest forwards and the virtual services' addresses are IPv4 (the SPICE tunnel carries IPv4 addresses).
        var guestForward = key.RemoteIp.IsIpv4 ? gateway.FindGuestForward(key.RemoteIp.Ipv4, key.RemotePort) : null;
        var virtualServices = gateway.Options.VirtualServices;
        var isVirtual = guestForward is null && key.RemoteIp.IsIpv4 && virtualServices?.IsVirtualAddress(key.RemoteIp.Ipv4) == true;
        var address = IPAddress.None;
        if (guestForward is null && !isVirtual && !gateway.TryMapDestination(key.RemoteIp, out address, out var refusal))
        {
            gateway.Counters.Drop(refusal);
            SendReset(key, 0, segment.SequenceNumber + 1, TcpFlags.Rst | TcpFlags.Ack);
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
            SendReset(key, 0, segment.SequenceNumber + 1, TcpFlags.Rst | TcpFlags.Ack);
            return;
        }

        var connection = new TcpConnection(gateway, this, key)
        {
            Origin = isVirtual ? Migration.TcpFlowOrigin.Virtual : Migration.TcpFlowOrigin.Nat,
            HostStays = guestForward is not null,
        };
        _connections.Add(key, connection);
        HalfOpen++;
        if (guestForward is not null)
        {
            connection.StartPassive(segment.SequenceNumber, parsed, guestForward.ConnectAsync);
            return;
        }

        if (isVirtual)
        {
            var guestIp = key.GuestIp.Ipv4;
            var remoteIp = key.RemoteIp.Ipv4;
            connection.StartPassive(segment.SequenceNumber, parsed, cancellationToken => virtualServices!.ConnectAsync(guestIp, key.GuestPort, remoteIp, key.RemotePort, cancellationToken));
            return;
        }

        connection.StartPassive(segment.SequenceNumber, parsed, new IPEndPoint(address, key.RemotePort));
    }

    /// <summary>
    /// A host client connected to a forwarded port: open a connection to the guest, over IPv6 to
    /// its first IPv6 address when the forward listens on an IPv6 address, else over IPv4. Caller
    /// holds the gateway lock.
    /// </summary>
    public void OpenToGuest(Socket accepted, ushort guestPort, bool ipv6)
    {
        if (gateway.Stopping.IsCancellationRequested)
        {
            accepted.Dispose();
            return;
        }

        var (guestIp, gatewayIp) = ipv6
            ? (gateway.GuestIpv6.First, gateway.GatewayIp6)
            : (gateway.GuestIp == 0 ? IpAddr.Ipv6Unspecified : IpAddr.FromIpv4(gateway.GuestIp), IpAddr.FromIpv4(gateway.GatewayIp));
        var unknown = guestIp.IsIpv6Unspecified;
        if (unknown || _connections.Count >= gateway.Options.MaxTcpConnections || HalfOpen >= gateway.Options.MaxHalfOpen)
        {
            gateway.Counters.Drop(unknown ? StackDrop.BadAddress : StackDrop.ConnectionLimit);
            accepted.Dispose();
            return;
        }

        FlowKey key;
        var attempts = 0;
        do
        {
            _nextForwardPort = _nextForwardPort == ushort.MaxValue ? (ushort)49152 : (ushort)(_nextForwardPort + 1);
            key = new FlowKey(guestIp, guestPort, gatewayIp, _nextForwardPort);
        }
        while (_connections.ContainsKey(key) && ++attempts < 16384);

        var connection = new TcpConnection(gateway, this, key)
        {
            Origin = Migration.TcpFlowOrigin.Forward,
        };
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
            if (connection.Evictable)
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
    public void SendReset(FlowKey key, uint seq, uint ack, TcpFlags flags)
    {
        var frame = gateway.RentIp(key.GuestIp, TcpPacket.MinHeaderLength);
        new TcpHeader(key.RemotePort, key.GuestPort, seq, ack, flags, 0)
            .WriteTo(frame.Span[Gateway.PayloadOffset(key.GuestIp)..], PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Tcp));
        gateway.EmitIp(frame, IpProtocol.Tcp, key.RemoteIp, key.GuestIp);
    }
}
