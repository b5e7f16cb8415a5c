using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using NetWire.Stack.Arp;
using NetWire.Stack.Dhcp;
using NetWire.Stack.Icmp;
using NetWire.Stack.Nat;
using NetWire.Stack.Ndp;
using NetWire.Stack.Tcp;
using NetWire.Stack.Tftp;
using NetWire.Stack.Udp;

namespace NetWire.Stack;

/// <summary>
/// The user-mode gateway's stack: what the guest sees on its link (a router at 10.0.2.2 and
/// fd00::2, a DNS server at 10.0.2.3 and fd00::3, a DHCP server, router advertisements) and the
/// NAT behind it (TCP connections and UDP flows of either family relayed through ordinary host
/// sockets).
/// </summary>
/// <remarks>
/// How this works: every state change happens under <see cref="Sync"/>: guest frames (a batch at
/// a time, from <see cref="GatewayEnd"/>'s pump), host socket completions, and the timer tick.
/// Frames towards the guest go to the receiver only while it can take them: TCP data waits in
/// its connection's buffer (the connection is queued for a flush when the guest end has room),
/// anything else is dropped and counted as <see cref="StackDrop.GuestFull"/>, as a full link
/// would. The gateway never reassembles IP fragments and never sends IP options. Headers are
/// read and written through the views of <c>NetWire.Core.Packets</c>; <see cref="OnGuestFrame"/>
/// is the one place that dispatches on the EtherType. The IPv4 and IPv6 layers
/// (<see cref="OnIpv4"/>, <see cref="OnIpv6"/> in Gateway.Ipv6.cs) check their own headers and
/// hand TCP, UDP and ICMP the addresses as <see cref="IpAddr"/> values and the upper-layer bytes:
/// from there one TCP endpoint, one UDP NAT and one ping relay serve both families, and
/// <see cref="EmitIp"/> writes whichever IP header the flow's addresses call for.
/// </remarks>
internal sealed partial class Gateway
{
    /// <summary>Where the payload of an IPv4 packet the gateway sends starts in its frame (it sends no IP options).</summary>
    public const int Ipv4PayloadOffset = EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength;

    /// <summary>Where the payload of an IPv6 packet the gateway sends starts in its frame (it sends no extension headers).</summary>
    public const int Ipv6PayloadOffset = EthernetFrame.HeaderLength + Ipv6Packet.HeaderLength;

    /// <summary>slirp's gateway MAC 52:55:0a:00:02:02, so guests and captures look familiar.</summary>
    public static readonly MacAddress GatewayMac = new(0x5255_0a00_0202);

    private MacAddress _guestMac = MacAddress.Broadcast;
    private readonly List<TcpConnection> _flushPending = [];
    private readonly List<TcpConnection> _ackPending = [];
    private readonly AsyncSignal _flushSignal = new();
    private readonly long _ticksPerMs;
    private IPacketReceiver? _receiver;
    private WireCounters? _wireCounters;
    private HostPoller? _poller;
    private ushort _ipId;

    /// <summary>The guest's address: from its DHCP lease, else learned from what it sends. 0 until known.</summary>
    private uint _guestIp;

    /// <summary>The frame being handled left its transport checksum undone or had it verified (<see cref="FrameOffload.ChecksumTrusted"/>). Under <see cref="Sync"/>.</summary>
    private bool _transportChecksumTrusted;

    public Gateway(GatewayOptions options, FramePool pool, TimeProvider time, ILogger logger)
    {
        options.Validate();
        Options = options;
        Pool = pool;
        Time = time;
        Logger = logger;
        GatewayIp = Ip.ToUInt(options.GatewayIp);
        DnsIp = Ip.ToUInt(options.DnsIp);
        GatewayIp6 = IpAddr.FromAddress(options.GatewayIp6);
        DnsIp6 = IpAddr.FromAddress(options.DnsIp6);
        _ticksPerMs = Math.Max(1, time.TimestampFrequency / 1000);
        Arp = new ArpHandler(this);
        Dhcp = new DhcpServer(this);
        Ndp = new NdpHandler(this);
        Dhcpv6 = new Dhcpv6Server(this);
        Icmp = new IcmpHandler(this);
        Udp = new UdpNat(this);
        Tcp = new TcpNat(this);
        Tftp = options.TftpRoot is { } root ? new TftpServer(this, root) : null;
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

    /// <summary>The gateway's IPv6 address in the guest's prefix (fd00::2).</summary>
    public IpAddr GatewayIp6 { get; }

    /// <summary>The IPv6 DNS address (fd00::3).</summary>
    public IpAddr DnsIp6 { get; }

    public ArpHandler Arp { get; }

    public DhcpServer Dhcp { get; }

    public NdpHandler Ndp { get; }

    public Dhcpv6Server Dhcpv6 { get; }

    public IcmpHandler Icmp { get; }

    public UdpNat Udp { get; }

    public TcpNat Tcp { get; }

    /// <summary>The TFTP server with <c>--tftp</c>, else null.</summary>
    public TftpServer? Tftp { get; }

    /// <summary>The thread that watches the host TCP sockets (and runs the guest's frames for the gateway end); made by <see cref="Attach"/>.</summary>
    public HostPoller Poller => _poller ?? throw new InvalidOperationException("the gateway is not attached");

    /// <summary>Cancelled when the gateway stops; socket loops observe it.</summary>
    public CancellationToken Stopping { get; private set; }

    /// <summary>The guest's MAC (broadcast until it has sent a frame).</summary>
    public MacAddress GuestMac => _guestMac;

    public uint GuestIp => Volatile.Read(ref _guestIp);

    /// <summary>The guest's address as net_wire get_ip reports it.</summary>
    public IPAddress? GuestAddress => GuestIp == 0 ? null : Ip.ToAddress(GuestIp);

    public long NowMs => Time.GetTimestamp() / _ticksPerMs;

    /// <summary>True while a frame towards the guest would be accepted.</summary>
    public bool CanEmit => _receiver?.CanRecvPacket == true;

    /// <summary>What frames towards the guest may leave undone (a TAP with a virtio-net header takes large TCP segments and checksums).</summary>
    public WireOffloads GuestOffloads => _receiver?.AcceptedOffloads ?? WireOffloads.None;

    /// <summary>
    /// True while the guest frame being handled needs no TCP or UDP checksum check: its device left
    /// the checksum to us or verified it (a TAP's kernel, next door). Caller holds <see cref="Sync"/>.
    /// </summary>
    public bool TransportChecksumTrusted => _transportChecksumTrusted;

    /// <summary>Completes when the guest end may have room again.</summary>
    public ValueTask WaitCanEmitAsync(CancellationToken cancellationToken) =>
        _receiver is { } receiver ? receiver.WaitCanRecvPacketAsync(cancellationToken) : default;

    /// <summary>Connects the stack to where its frames go (the link towards the guest).</summary>
    public void Attach(IPacketReceiver receiver, WireCounters counters, CancellationToken stopping)
    {
        _receiver = receiver;
        _wireCounters = counters;
        Stopping = stopping;
        lock (Sync)
        {
            _loopCancel = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        }

        _poller = new HostPoller(this);
    }

    /// <summary>Sets the guest's MAC before it has sent anything (a statically configured guest). Caller holds <see cref="Sync"/>.</summary>
    public void SetGuestMac(MacAddress mac) => _guestMac = mac;

    /// <summary>Sets the guest address (a DHCP ACK, or the first packet of a statically configured guest).</summary>
    public void SetGuestIp(uint address) => Volatile.Write(ref _guestIp, address);

    /// <summary>One frame from the guest, with what its device says about it. Caller holds <see cref="Sync"/>.</summary>
    public void OnGuestFrame(Frame frame)
    {
        _transportChecksumTrusted = frame.Offload.ChecksumTrusted;
        try
        {
            OnGuestFrame(frame.Span);
        }
        finally
        {
            _transportChecksumTrusted = false;
        }
    }

    /// <summary>One frame from the guest. Caller holds <see cref="Sync"/>.</summary>
    public void OnGuestFrame(ReadOnlySpan<byte> frame)
    {
        if (!EthernetFrame.TryParse(frame, out var ethernet))
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        var destination = ethernet.Destination;
        if (!destination.IsMulticast && destination != GatewayMac)
        {
            Counters.Drop(StackDrop.Ignored);
            return;
        }

        var source = ethernet.Source;
        if (!source.IsMulticast)
        {
            _guestMac = source;
        }

        switch (ethernet.EtherType)
        {
            case EtherType.Arp:
                Arp.OnArp(ethernet.Payload);
                break;
            case EtherType.Ipv4:
                OnIpv4(ethernet.Payload);
                break;
            case EtherType.Ipv6 when Options.Ipv6Enabled:
                OnIpv6(ethernet.Payload);
                break;
            default:
                Counters.Drop(StackDrop.UnsupportedEtherType);
                break;
        }
    }

    private void OnIpv4(ReadOnlySpan<byte> bytes)
    {
        if (!Ipv4Packet.TryParse(bytes, out var packet))
        {
            Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!packet.IsHeaderChecksumValid)
        {
            Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        if (packet.IsFragment)
        {
            Counters.Drop(StackDrop.Fragment);
            return;
        }

        if (packet.TimeToLive == 0)
        {
            Counters.Drop(StackDrop.TtlExpired);
            return;
        }

        var source = packet.Source;
        var destination = packet.Destination;
        var payload = packet.Payload;
        var protocol = packet.Protocol;
        if (source == 0 && protocol == IpProtocol.Udp)
        {
            // DHCP before the guest has an address.
            Udp.OnDatagram(IpAddr.FromIpv4(source), IpAddr.FromIpv4(destination), payload);
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
            case IpProtocol.Icmp:
                Icmp.OnIcmp(source, destination, payload);
                break;
            case IpProtocol.Tcp:
                Tcp.OnSegment(IpAddr.FromIpv4(source), IpAddr.FromIpv4(destination), payload);
                break;
            case IpProtocol.Udp:
                Udp.OnDatagram(IpAddr.FromIpv4(source), IpAddr.FromIpv4(destination), payload);
                break;
            default:
                Counters.Drop(StackDrop.UnsupportedProtocol);
                break;
        }
    }

    /// <summary>
    /// Where a guest's packet to <paramref name="destination"/> goes on the host, or the reason it
    /// may not: the gateway address means host loopback (127.0.0.1, or ::1 for the IPv6 one; only
    /// with --allow-host-loopback), the rest of the guest network and special addresses are not
    /// routed, and the outbound policy applies.
    /// </summary>
    public bool TryMapDestination(IpAddr destination, out IPAddress hostAddress, out StackDrop refusal)
    {
        if (Options.Restrict)
        {
            // QEMU's restrict=on: nothing beyond the gateway's own services and the forwards, in IPv4 and IPv6 alike.
            hostAddress = IPAddress.None;
            refusal = StackDrop.Restricted;
            return false;
        }

        if (!destination.IsIpv4)
        {
            return TryMapDestination6(destination, out hostAddress, out refusal);
        }

        hostAddress = IPAddress.None;
        refusal = StackDrop.Denied;
        var address = destination.Ipv4;
        if (address == GatewayIp)
        {
            if (!Options.AllowHostLoopback)
            {
                return false;
            }

            hostAddress = IPAddress.Loopback;
            return true;
        }

        if (Options.Network.Contains(address) || address == 0 || address >= 0xe0000000u)
        {
            refusal = StackDrop.BadAddress;
            return false;
        }

        if (Ip.IsLoopback(address) || !Options.Policy.Permits(destination))
        {
            return false;
        }

        hostAddress = Ip.ToAddress(address);
        return true;
    }

    /// <summary>The guest forward for <paramref name="address"/>:<paramref name="port"/>, or null.</summary>
    public GuestForward? FindGuestForward(uint address, ushort port)
    {
        foreach (var forward in Options.GuestForwards)
        {
            if (forward.Port == port && Ip.ToUInt(forward.Address) == address)
            {
                return forward;
            }
        }

        return null;
    }

    /// <summary>True when <paramref name="address"/> is a guest forward's address (answered by ARP).</summary>
    public bool IsGuestForwardAddress(uint address)
    {
        foreach (var forward in Options.GuestForwards)
        {
            if (Ip.ToUInt(forward.Address) == address)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Rents a frame for an IPv4 packet with <paramref name="payloadLength"/> bytes after the IP header (from <see cref="Ipv4PayloadOffset"/>).</summary>
    public Frame RentIpv4(int payloadLength) => Pool.Rent(Ipv4PayloadOffset + payloadLength);

    /// <summary>Where the payload starts in a frame the gateway sends to <paramref name="destination"/>: after an IPv4 or an IPv6 header.</summary>
    public static int PayloadOffset(IpAddr destination) => destination.IsIpv4 ? Ipv4PayloadOffset : Ipv6PayloadOffset;

    /// <summary>The IP header's length in a packet the gateway sends to <paramref name="destination"/> (20 or 40).</summary>
    public static int IpHeaderLength(IpAddr destination) => destination.IsIpv4 ? Ipv4Packet.MinHeaderLength : Ipv6Packet.HeaderLength;

    /// <summary>Rents a frame for a packet to <paramref name="destination"/> with <paramref name="payloadLength"/> bytes after the IP header (from <see cref="PayloadOffset"/>).</summary>
    public Frame RentIp(IpAddr destination, int payloadLength) => Pool.Rent(PayloadOffset(destination) + payloadLength);

    /// <summary>
    /// Fills in the Ethernet and IP headers of a frame from <see cref="RentIp"/> (IPv4 or IPv6, as
    /// the addresses are) and hands it to the guest, or drops it (counted) when the guest end is
    /// full. Takes ownership.
    /// </summary>
    public bool EmitIp(Frame frame, IpProtocol protocol, IpAddr source, IpAddr destination) =>
        destination.IsIpv4
            ? EmitIpv4(frame, protocol, source.Ipv4, destination.Ipv4)
            : EmitIpv6(frame, protocol, source, destination, hopLimit: 64);

    /// <summary>
    /// Fills in the Ethernet and IPv4 headers of a frame from <see cref="RentIpv4"/> and hands it to
    /// the guest, or drops it (counted) when the guest end is full. Takes ownership.
    /// </summary>
    public bool EmitIpv4(Frame frame, IpProtocol protocol, uint source, uint destination, bool broadcast = false)
    {
        var span = frame.Span;
        WriteEthernet(span, broadcast, EtherType.Ipv4);
        new Ipv4Header(source, destination, protocol, frame.Length - Ipv4PayloadOffset) { Identification = _ipId++ }
            .WriteTo(span[EthernetFrame.HeaderLength..]);
        return Emit(frame);
    }

    /// <summary>Writes the Ethernet header: gateway MAC to the guest's (or broadcast).</summary>
    public void WriteEthernet(Span<byte> frame, bool broadcast, EtherType type) =>
        new EthernetHeader(broadcast ? MacAddress.Broadcast : _guestMac, GatewayMac, type).WriteTo(frame);

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
                    if (_frozen)
                    {
                        // Thaw signals again; a handed-over gateway never flushes.
                        break;
                    }

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
        if (_frozen)
        {
            return;
        }

        var now = NowMs;
        Tcp.OnTimer(now);
        Udp.OnTimer(now);
        Icmp.OnTimer(now);
        Tftp?.OnTimer(now);
        if (Options.Ipv6Enabled)
        {
            Ndp.OnTimer(now);
        }
    }

    /// <summary>Closes every flow. Caller holds <see cref="Sync"/>.</summary>
    public void Shutdown()
    {
        Tcp.CloseAll();
        Udp.CloseAll();
        Icmp.CloseAll();
        Tftp?.CloseAll();
        _poller?.Stop();
        _loopCancel?.Dispose();
        _loopCancel = null;
    }
}
