using System.Net;
using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Udp;

/// <summary>
/// UDP NAT: each (guest port, destination) pair is a flow with its own connected host socket.
/// Datagrams to 10.0.2.3:53 go to the upstream resolver; to the gateway address, to host
/// loopback when allowed. Replies come back from the address the guest sent to. A flow closes
/// after its idle timeout (shorter for DNS); the table is bounded.
/// </summary>
/// <remarks>
/// UDP host forwards (<c>--forward udp:...</c>): each host client (address and port) that sends
/// to a forward's socket gets a port of the gateway address; its datagrams reach the guest from
/// that port, and the guest's datagrams back to it leave through the forward's socket to the
/// client. Such conversations share the flow limit and idle timeout.
/// </remarks>
internal sealed class UdpNat(Gateway gateway)
{
    private readonly Dictionary<FlowKey, UdpFlow> _flows = [];
    private readonly Dictionary<FlowKey, ForwardedPeer> _forwarded = [];
    private readonly Dictionary<(Socket Listener, IPEndPoint Client), FlowKey> _forwardedByClient = [];
    private readonly List<FlowKey> _expired = [];
    private ushort _nextForwardPort = 49152;
    private IPEndPoint? _dnsUpstream;
    private bool _dnsResolved;

    public int Count => _flows.Count + _forwarded.Count;

    /// <summary>The next gateway port a UDP forward's client gets (a migration carries it). Caller holds the gateway lock.</summary>
    public ushort NextForwardPort
    {
        get => _nextForwardPort;
        set => _nextForwardPort = value < 49152 ? (ushort)49152 : value;
    }

    /// <summary>Source: the flows with their host sockets' addresses. Caller holds the gateway lock.</summary>
    public void Export(List<Migration.DatagramFlowState> into, long nowMs)
    {
        foreach (var flow in _flows.Values)
        {
            if (!flow.IsClosed && flow.EndPoints is { } ends)
            {
                into.Add(new(flow.Key, false, ends.Local, ends.Remote, flow.IsDns, Math.Max(0, nowMs - flow.LastUsedMs)));
            }
        }
    }

    /// <summary>Source: the flows went to the target: their sockets close (freeing their ports). Caller holds the gateway lock.</summary>
    public void HandOver() => CloseAll();

    /// <summary>
    /// Target: opens the migrated flows towards the destinations this gateway maps their keys to,
    /// from the source's local ports where they are free. Caller holds the gateway lock.
    /// </summary>
    public List<UdpFlow> Import(List<Migration.DatagramFlowState> states)
    {
        var opened = new List<UdpFlow>();
        foreach (var state in states)
        {
            if (state.Icmp || !state.Key.RemoteIp.IsIpv4 || _flows.ContainsKey(state.Key) || Count >= gateway.Options.MaxUdpFlows
                || !TryResolve(state.Key.RemoteIp.Ipv4, state.Key.RemotePort, out var target, out _))
            {
                continue;
            }

            var isDns = state.Key.RemoteIp.Ipv4 == gateway.DnsIp;
            var flow = new UdpFlow(gateway, state.Key, target, isDns ? gateway.Options.DnsIdleTimeout : gateway.Options.UdpIdleTimeout) { IsDns = isDns };
            _flows.Add(state.Key, flow);
            flow.Start(state.Local, state.IdleMs);
            opened.Add(flow);
        }

        return opened;
    }

    /// <summary>Starts the receive loops a freeze stopped. Caller holds the gateway lock.</summary>
    public void ResumeAll()
    {
        foreach (var flow in _flows.Values)
        {
            flow.Resume();
        }
    }

    /// <summary>One UDP datagram from the guest. Caller holds the gateway lock.</summary>
    public void OnDatagram(uint source, uint destination, ReadOnlySpan<byte> bytes)
    {
        if (!UdpPacket.TryParse(bytes, out var udp))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (udp.Checksum != 0 && !udp.IsChecksumValid(PseudoHeader.Ipv4(source, destination, IpProtocol.Udp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        var sourcePort = udp.SourcePort;
        var destinationPort = udp.DestinationPort;
        var payload = udp.Payload;
        if (destinationPort == 67)
        {
            if (destination == 0xffffffff || destination == gateway.GatewayIp)
            {
                gateway.Dhcp.OnRequest(payload);
            }
            else
            {
                gateway.Counters.Drop(StackDrop.Ignored);
            }

            return;
        }

        if (source == 0)
        {
            gateway.Counters.Drop(StackDrop.BadAddress);
            return;
        }

        var key = new FlowKey(IpAddr.FromIpv4(source), sourcePort, IpAddr.FromIpv4(destination), destinationPort);
        if (_forwarded.TryGetValue(key, out var peer))
        {
            peer.LastUsedMs = gateway.NowMs;
            try
            {
                peer.Listener.SendTo(payload, SocketFlags.None, peer.Client);
            }
            catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsSocketEnd(ex))
            {
                gateway.Counters.Drop(StackDrop.HostSendFailed);
            }

            return;
        }

        if (!_flows.TryGetValue(key, out var flow))
        {
            if (!TryResolve(destination, destinationPort, out var target, out var refusal))
            {
                gateway.Counters.Drop(refusal);
                return;
            }

            if (Count >= gateway.Options.MaxUdpFlows)
            {
                gateway.Counters.Drop(StackDrop.UdpFlowLimit);
                return;
            }

            var isDns = destination == gateway.DnsIp;
            flow = new UdpFlow(gateway, key, target, isDns ? gateway.Options.DnsIdleTimeout : gateway.Options.UdpIdleTimeout) { IsDns = isDns };
            _flows.Add(key, flow);
            gateway.Counters.UdpFlow();
            flow.Start();
        }

        flow.Send(payload, gateway.NowMs);
    }

    private bool TryResolve(uint destination, ushort port, out IPEndPoint target, out StackDrop refusal)
    {
        target = null!;
        if (destination == gateway.DnsIp)
        {
            refusal = StackDrop.NoDnsServer;
            if (port != 53 || DnsUpstream() is not { } upstream)
            {
                return false;
            }

            target = upstream;
            return true;
        }

        if (!gateway.TryMapDestination(destination, out var address, out refusal))
        {
            return false;
        }

        target = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>The configured resolver, else the first IPv4 nameserver in /etc/resolv.conf.</summary>
    private IPEndPoint? DnsUpstream()
    {
        if (gateway.Options.DnsUpstream is { } configured)
        {
            return configured;
        }

        if (!_dnsResolved)
        {
            _dnsResolved = true;
            try
            {
                foreach (var line in File.ReadLines("/etc/resolv.conf"))
                {
                    var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && parts[0] == "nameserver" && IPAddress.TryParse(parts[1], out var address)
                        && address.AddressFamily == AddressFamily.InterNetwork)
                    {
                        _dnsUpstream = new IPEndPoint(address, 53);
                        break;
                    }
                }
            }
            catch (Exception ex) when (NetWire.Core.Net.IoErrors.IsFileError(ex))
            {
            }
        }

        return _dnsUpstream;
    }

    /// <summary>
    /// A datagram from <paramref name="client"/> to a UDP forward's socket: to the guest's port,
    /// from the gateway port this client has (or gets now). Caller holds the gateway lock.
    /// </summary>
    public void FromForward(Socket listener, IPEndPoint client, ushort guestPort, ReadOnlySpan<byte> payload)
    {
        var guestIp = gateway.GuestIp;
        if (guestIp == 0)
        {
            gateway.Counters.Drop(StackDrop.BadAddress);
            return;
        }

        if (!_forwardedByClient.TryGetValue((listener, client), out var key))
        {
            if (Count >= gateway.Options.MaxUdpFlows)
            {
                gateway.Counters.Drop(StackDrop.UdpFlowLimit);
                return;
            }

            key = new FlowKey(IpAddr.FromIpv4(guestIp), guestPort, IpAddr.FromIpv4(gateway.GatewayIp), _nextForwardPort);
            while (_forwarded.ContainsKey(key) || _flows.ContainsKey(key))
            {
                _nextForwardPort = _nextForwardPort == ushort.MaxValue ? (ushort)49152 : (ushort)(_nextForwardPort + 1);
                key = key with { RemotePort = _nextForwardPort };
            }

            _nextForwardPort = _nextForwardPort == ushort.MaxValue ? (ushort)49152 : (ushort)(_nextForwardPort + 1);
            _forwarded.Add(key, new ForwardedPeer(listener, client) { LastUsedMs = gateway.NowMs });
            _forwardedByClient.Add((listener, client), key);
            gateway.Counters.UdpFlow();
        }

        _forwarded[key].LastUsedMs = gateway.NowMs;
        EmitToGuest(gateway, key, payload);
    }

    /// <summary>Sends a UDP datagram to the guest from the flow's remote side. Caller holds the gateway lock.</summary>
    public static void EmitToGuest(Gateway gateway, FlowKey key, ReadOnlySpan<byte> payload)
    {
        var length = UdpPacket.HeaderLength + payload.Length;
        if (Ipv4Packet.MinHeaderLength + length > gateway.Options.Mtu)
        {
            // Larger than the guest's MTU, and the gateway does not fragment.
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var frame = gateway.RentIpv4(length);
        var udp = frame.Span.Slice(Gateway.Ipv4PayloadOffset, length);
        payload.CopyTo(udp[UdpPacket.HeaderLength..]);
        new UdpHeader(key.RemotePort, key.GuestPort).WriteTo(udp, PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Udp));
        gateway.EmitIpv4(frame, IpProtocol.Udp, key.RemoteIp.Ipv4, key.GuestIp.Ipv4);
    }

    /// <summary>Closes idle flows. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs)
    {
        var idleMs = (long)gateway.Options.UdpIdleTimeout.TotalMilliseconds;
        foreach (var (key, peer) in _forwarded)
        {
            if (nowMs - peer.LastUsedMs > idleMs)
            {
                _expired.Add(key);
            }
        }

        foreach (var key in _expired)
        {
            _forwarded.Remove(key, out var peer);
            _forwardedByClient.Remove((peer!.Listener, peer.Client));
        }

        _expired.Clear();
        Nat.DatagramFlowTable.ExpireIdle(_flows, _expired, nowMs, static flow => flow.IdleTimeoutMs);
    }

    public void CloseAll()
    {
        Nat.DatagramFlowTable.CloseAll(_flows);
        _forwarded.Clear();
        _forwardedByClient.Clear();
    }

    /// <summary>A host client of a UDP forward, and the socket its datagrams came in on.</summary>
    private sealed class ForwardedPeer(Socket listener, IPEndPoint client)
    {
        public Socket Listener { get; } = listener;

        public IPEndPoint Client { get; } = client;

        public long LastUsedMs { get; set; }
    }
}

