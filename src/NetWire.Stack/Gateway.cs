using System.Buffers.Binary;
using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Stack.Arp;
using NetWire.Stack.Dhcp;
using NetWire.Stack.Icmp;
using NetWire.Stack.Ipv4;
using NetWire.Stack.Tcp;
using NetWire.Stack.Udp;

namespace NetWire.Stack;

/// <summary>
/// The user-mode gateway's stack: what the guest sees on its link (a router at 10.0.2.2, a DNS
/// server at 10.0.2.3, a DHCP server) and the NAT behind it (TCP connections and UDP flows
/// relayed through ordinary host sockets).
/// </summary>
/// <remarks>
/// How this works: every state change happens under <see cref="Sync"/>: guest frames (a batch at
/// a time, from <see cref="GatewayEnd"/>'s pump), host socket completions, and the timer tick.
/// Frames towards the guest go to the receiver only while it can take them: TCP data waits in
/// its connection's buffer (the connection is queued for a flush when the guest end has room),
/// anything else is dropped and counted as <see cref="StackDrop.GuestFull"/>, as a full link
/// would. The gateway never reassembles IP fragments and never sends IP options.
/// </remarks>
internal sealed class Gateway
{
    public const int EthernetHeader = 14;
    public const int Ipv4HeaderLength = 20;
    public const byte ProtocolIcmp = 1;
    public const byte ProtocolTcp = 6;
    public const byte ProtocolUdp = 17;

    /// <summary>slirp's gateway MAC 52:55:0a:00:02:02, so guests and captures look familiar.</summary>
    public static readonly byte[] GatewayMac = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

    private readonly byte[] _guestMac = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    private readonly List<TcpConnection> _flushPending = [];
    private readonly List<TcpConnection> _ackPending = [];
    private readonly AsyncSignal _flushSignal = new();
    private readonly long _ticksPerMs;
    private IPacketReceiver? _receiver;
    private WireCounters? _wireCounters;
    private ushort _ipId;

    /// <summary>The guest's address: from its DHCP lease, else learned from what it sends. 0 until known.</summary>
    private uint _guestIp;

    public Gateway(GatewayOptions options, FramePool pool, TimeProvider time, ILogger logger)
    {
        options.Validate();
        Options = options;
        Pool = pool;
        Time = time;
        Logger = logger;
        GatewayIp = Ip.ToUInt(options.GatewayIp);
        DnsIp = Ip.ToUInt(options.DnsIp);
        _ticksPerMs = Math.Max(1, time.TimestampFrequency / 1000);
        Arp = new ArpHandler(this);
        Dhcp = new DhcpServer(this);
        Icmp = new IcmpHandler(this);
        Udp = new UdpNat(this);
        Tcp = new TcpNat(this);
    }

    /// <summary>Guards all stack state; taken by the guest pump, socket completions and the timer.</summary>
    public Lock Sync { get; } = new();

    public GatewayOptions Options { get; }

    public FramePool Pool { get; }

    public TimeProvider Time { get; }

    public ILogger Logger { get; }

    public StackCounters Counters { get; } = new();

    public uint GatewayIp { get; }

    public uint DnsIp { get; }

    public ArpHandler Arp { get; }

    public DhcpServer Dhcp { get; }

    public IcmpHandler Icmp { get; }

    public UdpNat Udp { get; }

    public TcpNat Tcp { get; }

    /// <summary>Cancelled when the gateway stops; socket loops observe it.</summary>
    public CancellationToken Stopping { get; private set; }

    /// <summary>The guest's MAC (broadcast until it has sent a frame).</summary>
    public ReadOnlySpan<byte> GuestMac => _guestMac;

    public uint GuestIp => Volatile.Read(ref _guestIp);

    /// <summary>The guest's address as net_wire get_ip reports it.</summary>
    public IPAddress? GuestAddress => GuestIp == 0 ? null : Ip.ToAddress(GuestIp);

    public long NowMs => Time.GetTimestamp() / _ticksPerMs;

    /// <summary>True while a frame towards the guest would be accepted.</summary>
    public bool CanEmit => _receiver?.CanRecvPacket == true;

    /// <summary>Completes when the guest end may have room again.</summary>
    public ValueTask WaitCanEmitAsync(CancellationToken cancellationToken) =>
        _receiver is { } receiver ? receiver.WaitCanRecvPacketAsync(cancellationToken) : default;

    /// <summary>Connects the stack to where its frames go (the link towards the guest).</summary>
    public void Attach(IPacketReceiver receiver, WireCounters counters, CancellationToken stopping)
    {
        _receiver = receiver;
        _wireCounters = counters;
        Stopping = stopping;
    }

    /// <summary>Sets the guest's MAC before it has sent anything (a statically configured guest). Caller holds <see cref="Sync"/>.</summary>
    public void SetGuestMac(ReadOnlySpan<byte> mac) => mac.CopyTo(_guestMac);

    /// <summary>Sets the guest address (a DHCP ACK, or the first packet of a statically configured guest).</summary>
    public void SetGuestIp(uint address) => Volatile.Write(ref _guestIp, address);

    /// <summary>One frame from the guest. Caller holds <see cref="Sync"/>.</summary>
    public void OnGuestFrame(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < EthernetHeader)
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        var destination = frame[..6];
        if ((destination[0] & 1) == 0 && !destination.SequenceEqual(GatewayMac))
        {
            Counters.Drop(StackDrop.Ignored);
            return;
        }

        var source = frame.Slice(6, 6);
        if ((source[0] & 1) == 0)
        {
            source.CopyTo(_guestMac);
        }

        var type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        switch (type)
        {
            case 0x0806:
                Arp.OnArp(frame[EthernetHeader..]);
                break;
            case 0x0800:
                OnIpv4(frame[EthernetHeader..]);
                break;
            default:
                Counters.Drop(StackDrop.UnsupportedEtherType);
                break;
        }
    }

    private void OnIpv4(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < Ipv4HeaderLength || packet[0] >> 4 != 4)
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        var headerLength = (packet[0] & 0xf) * 4;
        var totalLength = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
        if (headerLength < Ipv4HeaderLength || totalLength < headerLength || totalLength > packet.Length)
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        packet = packet[..totalLength];
        if (!Checksum.IsValid(Checksum.Add(0, packet[..headerLength])))
        {
            Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        // MF set or a non-zero offset: a fragment (RFC 791 3.1).
        if ((BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0)
        {
            Counters.Drop(StackDrop.Fragment);
            return;
        }

        if (packet[8] == 0)
        {
            Counters.Drop(StackDrop.TtlExpired);
            return;
        }

        var source = BinaryPrimitives.ReadUInt32BigEndian(packet[12..]);
        var destination = BinaryPrimitives.ReadUInt32BigEndian(packet[16..]);
        var payload = packet[headerLength..];
        var protocol = packet[9];
        if (source == 0 && protocol == ProtocolUdp)
        {
            // DHCP before the guest has an address.
            Udp.OnDatagram(source, destination, payload);
            return;
        }

        if (!Options.Network.Contains(source) || source == GatewayIp || source == DnsIp || source == Options.Network.Broadcast)
        {
            Counters.Drop(StackDrop.BadAddress);
            return;
        }

        if (GuestIp == 0)
        {
            SetGuestIp(source);
        }

        switch (protocol)
        {
            case ProtocolIcmp:
                Icmp.OnIcmp(source, destination, packet[8], payload);
                break;
            case ProtocolTcp:
                Tcp.OnSegment(source, destination, payload);
                break;
            case ProtocolUdp:
                Udp.OnDatagram(source, destination, payload);
                break;
            default:
                Counters.Drop(StackDrop.UnsupportedProtocol);
                break;
        }
    }

    /// <summary>
    /// Where a guest's packet to <paramref name="destination"/> goes on the host, or the reason it
    /// may not: the gateway address means host loopback (with --allow-host-loopback), the rest of
    /// the guest network and special addresses are not routed, and the outbound policy applies.
    /// </summary>
    public bool TryMapDestination(uint destination, out IPAddress hostAddress, out StackDrop refusal)
    {
        hostAddress = IPAddress.None;
        refusal = StackDrop.Denied;
        if (destination == GatewayIp)
        {
            if (!Options.AllowHostLoopback)
            {
                return false;
            }

            hostAddress = IPAddress.Loopback;
            return true;
        }

        if (Options.Network.Contains(destination) || destination == 0 || destination >= 0xe0000000u)
        {
            refusal = StackDrop.BadAddress;
            return false;
        }

        if (Ip.IsLoopback(destination) || !Options.Policy.Permits(destination))
        {
            return false;
        }

        hostAddress = Ip.ToAddress(destination);
        return true;
    }

    /// <summary>Rents a frame for an IPv4 packet with <paramref name="payloadLength"/> bytes after the IP header.</summary>
    public Frame RentIpv4(int payloadLength) => Pool.Rent(EthernetHeader + Ipv4HeaderLength + payloadLength);

    /// <summary>
    /// Fills in the Ethernet and IPv4 headers of a frame from <see cref="RentIpv4"/> and hands it to
    /// the guest, or drops it (counted) when the guest end is full. Takes ownership.
    /// </summary>
    public bool EmitIpv4(Frame frame, byte protocol, uint source, uint destination, bool broadcast = false)
    {
        var span = frame.Span;
        WriteEthernet(span, broadcast, 0x0800);
        var ip = span[EthernetHeader..];
        ip[0] = 0x45;
        ip[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(frame.Length - EthernetHeader));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], _ipId++);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
        ip[8] = 64;
        ip[9] = protocol;
        ip[10] = 0;
        ip[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..Ipv4HeaderLength]));
        return Emit(frame);
    }

    /// <summary>Writes the Ethernet header: gateway MAC to the guest's (or broadcast).</summary>
    public void WriteEthernet(Span<byte> frame, bool broadcast, ushort type)
    {
        if (broadcast)
        {
            frame[..6].Fill(0xff);
        }
        else
        {
            _guestMac.CopyTo(frame);
        }

        GatewayMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], type);
    }

    /// <summary>Hands a complete frame to the guest, or drops it (counted) when the guest end is full. Takes ownership.</summary>
    public bool Emit(Frame frame)
    {
        var receiver = _receiver;
        if (receiver is null || !receiver.CanRecvPacket)
        {
            Counters.Drop(StackDrop.GuestFull);
            frame.Dispose();
            return false;
        }

        _wireCounters?.Received(frame.Length);
        receiver.RecvPacket(frame);
        return true;
    }

    /// <summary>A connection has data or an ACK to send once the guest end has room.</summary>
    public void RequestFlush(TcpConnection connection)
    {
        if (!connection.FlushQueued)
        {
            connection.FlushQueued = true;
            _flushPending.Add(connection);
            _flushSignal.Set();
        }
    }

    /// <summary>A connection has work for the end of the current batch of guest frames (the ACK owed, waking its host sender).</summary>
    public void RequestAck(TcpConnection connection)
    {
        if (!connection.AckQueued)
        {
            connection.AckQueued = true;
            _ackPending.Add(connection);
        }
    }

    /// <summary>The guest pump drained its queue: send the ACKs owed. Caller holds <see cref="Sync"/>.</summary>
    public void EndOfBatch()
    {
        for (var i = 0; i < _ackPending.Count; i++)
        {
            var connection = _ackPending[i];
            connection.AckQueued = false;
            connection.EndOfBatch();
        }

        _ackPending.Clear();
    }

    /// <summary>Retries connections that were blocked by a full guest end, while it has room.</summary>
    public async Task FlushLoopAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await _flushSignal.WaitAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                var receiver = _receiver!;
                await receiver.WaitCanRecvPacketAsync(cancellationToken).ConfigureAwait(false);
                lock (Sync)
                {
                    var count = _flushPending.Count;
                    for (var i = 0; i < count && CanEmit; i++)
                    {
                        var connection = _flushPending[0];
                        _flushPending.RemoveAt(0);
                        connection.FlushQueued = false;
                        connection.Flush();
                    }

                    if (_flushPending.Count == 0)
                    {
                        break;
                    }
                }
            }
        }
    }

    /// <summary>The periodic tick: retransmissions, TIME-WAIT, idle UDP flows, DHCP leases. Caller holds <see cref="Sync"/>.</summary>
    public void OnTimer()
    {
        var now = NowMs;
        Tcp.OnTimer(now);
        Udp.OnTimer(now);
        Icmp.OnTimer(now);
    }

    /// <summary>Closes every flow. Caller holds <see cref="Sync"/>.</summary>
    public void Shutdown()
    {
        Tcp.CloseAll();
        Udp.CloseAll();
        Icmp.CloseAll();
    }
}
