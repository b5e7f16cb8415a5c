using System.Net;
using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Udp;

/// <summary>
/// UDP NAT for both families: each (guest port, destination) pair is a flow with its own
/// connected host socket. Datagrams to 10.0.2.3:53 or [fd00::3]:53 go to the upstream resolver
/// (of either family); to the gateway address, to host loopback when allowed. Replies come back
/// from the address the guest sent to. A flow closes after its idle timeout (shorter for DNS);
/// the table is bounded. When the host says the far port is closed (ICMP port unreachable on
/// the connected socket), the guest gets a port unreachable of its family, as from that host.
/// DHCP (port 67) and DHCPv6 (port 547) go to the gateway's servers.
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
            if (state.Icmp || _flows.ContainsKey(state.Key) || Count >= gateway.Options.MaxUdpFlows
                || !TryResolve(state.Key.RemoteIp, state.Key.RemotePort, out var target, out _))
            {
                continue;
            }

            var isDns = IsDnsAddress(state.Key.RemoteIp);
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
    public void OnDatagram(IpAddr source, IpAddr destination, ReadOnlySpan<byte> bytes)
    {
        if (!UdpPacket.TryParse(bytes, out var udp))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        // RFC 8200 8.1: over IPv6 the checksum is mandatory, and 0 is no checksum.
        var ipv4 = source.IsIpv4;
        if ((udp.Checksum != 0 || !ipv4) && !gateway.TransportChecksumTrusted && !udp.IsChecksumValid(PseudoHeader.Create(source, destination, IpProtocol.Udp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        var sourcePort = udp.SourcePort;
        var destinationPort = udp.DestinationPort;
        var payload = udp.Payload;
        if (ipv4 && destinationPort == 67)
        {
            var to = destination.Ipv4;
            if (to == 0xffffffff || to == gateway.GatewayIp)
            {
                gateway.Dhcp.OnRequest(payload);
            }
            else
            {
                gateway.Counters.Drop(StackDrop.Ignored);
            }

            return;
        }

        if (!ipv4 && destinationPort == Dhcpv6Packet.ServerPort)
        {
            gateway.Dhcpv6.OnMessage(source, sourcePort, destination, payload);
            return;
        }

        if (ipv4 ? source.Ipv4 == 0 : !gateway.Options.Network6.Contains(source) || destination.IsIpv6Multicast)
        {
            gateway.Counters.Drop(StackDrop.BadAddress);
            return;
        }

        if (ipv4 && destination.Ipv4 == gateway.GatewayIp && gateway.Tftp is { } tftp && tftp.Owns(source.Ipv4, sourcePort, destinationPort))
        {
            tftp.OnDatagram(source.Ipv4, sourcePort, destinationPort, payload);
            return;
        }

        var key = new FlowKey(source, sourcePort, destination, destinationPort);
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

            var isDns = IsDnsAddress(destination);
            flow = new UdpFlow(gateway, key, target, isDns ? gateway.Options.DnsIdleTimeout : gateway.Options.UdpIdleTimeout) { IsDns = isDns };
            _flows.Add(key, flow);
            gateway.Counters.UdpFlow();
            flow.Start();
        }

        flow.Send(payload, gateway.NowMs);
    }

    private bool IsDnsAddress(IpAddr address) => address.IsIpv4 ? address.Ipv4 == gateway.DnsIp : address == gateway.DnsIp6;

    private bool TryResolve(IpAddr destination, ushort port, out IPEndPoint target, out StackDrop refusal)
    {
        target = null!;
        if (IsDnsAddress(destination))
        {
            if (gateway.Options.Restrict)
            {
                // As QEMU's restrict=on: the resolver is outside too.
                refusal = StackDrop.Restricted;
                return false;
            }

            refusal = StackDrop.NoDnsServer;
            if (port != 53 || gateway.Options.DnsDisabled || DnsUpstream() is not { } upstream)
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

    /// <summary>The configured resolver, else the first nameserver in /etc/resolv.conf (IPv4 or IPv6; a scoped link-local one keeps its interface).</summary>
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
                    if (parts.Length >= 2 && parts[0] == "nameserver" && IPAddress.TryParse(parts[1], out var address))
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
    /// from the gateway port this client has (or gets now), over IPv6 when the forward's socket is
    /// an IPv6 one. Caller holds the gateway lock.
    /// </summary>
    public void FromForward(Socket listener, IPEndPoint client, ushort guestPort, ReadOnlySpan<byte> payload)
    {
        var ipv6 = listener.AddressFamily == AddressFamily.InterNetworkV6;
        var (guestIp, gatewayIp) = ipv6
            ? (gateway.GuestIpv6.First, gateway.GatewayIp6)
            : (gateway.GuestIp == 0 ? IpAddr.Ipv6Unspecified : IpAddr.FromIpv4(gateway.GuestIp), IpAddr.FromIpv4(gateway.GatewayIp));
        if (guestIp.IsIpv6Unspecified)
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

            key = new FlowKey(guestIp, guestPort, gatewayIp, _nextForwardPort);
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
        if (Gateway.IpHeaderLength(key.GuestIp) + length > gateway.Options.Mtu)
        {
            // Larger than the guest's MTU, and the gateway does not fragment.
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var frame = gateway.RentIp(key.GuestIp, length);
        var udp = frame.Span.Slice(Gateway.PayloadOffset(key.GuestIp), length);
        payload.CopyTo(udp[UdpPacket.HeaderLength..]);
        new UdpHeader(key.RemotePort, key.GuestPort).WriteTo(udp, PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Udp));
        gateway.EmitIp(frame, IpProtocol.Udp, key.RemoteIp, key.GuestIp);
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

