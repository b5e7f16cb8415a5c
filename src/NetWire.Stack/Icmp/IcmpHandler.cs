using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Icmp;

/// <summary>
/// ICMP (RFC 792) and ICMPv6 (RFC 4443): echo requests to the gateway's own addresses are
/// answered here; echo requests to other addresses the outbound policy permits are relayed
/// through unprivileged ICMP or ICMPv6 sockets (one <see cref="IcmpFlow"/> per guest identifier
/// and destination, closed after <see cref="IdleTimeoutMs"/> without traffic, at most
/// <see cref="MaxFlows"/> of both families together). Where the host does not allow such sockets
/// (net.ipv4.ping_group_range, which governs ICMPv6 sockets too, does not cover the gateway's
/// groups), the echo is dropped and counted as <see cref="StackDrop.IcmpForwardUnavailable"/>.
/// Neighbour discovery goes to <see cref="NdpHandler"/>; errors from the guest are checked and
/// counted; other types are ignored and counted.
/// </summary>
/// <remarks>
/// The gateway sends one kind of error itself, for both families: port unreachable, when a UDP
/// flow's host socket reports the far port closed. It quotes the guest's datagram as the IP and
/// UDP headers of that flow (the gateway keeps no copy of the datagram, and the guest's stack
/// finds its socket by those headers), and is rate-limited to <see cref="ErrorBurst"/> at once and
/// <see cref="ErrorsPerSecond"/> a second (RFC 4443 2.4(f), RFC 1812 4.3.2.8).
/// </remarks>
internal sealed class IcmpHandler(Gateway gateway)
{
    /// <summary>Relayed ping conversations open at once.</summary>
    public const int MaxFlows = 64;

    /// <summary>A relayed conversation with no echo for this long is closed.</summary>
    public const long IdleTimeoutMs = 30_000;

    /// <summary>Errors the gateway may send back to back.</summary>
    public const int ErrorBurst = 10;

    /// <summary>Errors the gateway sends a second at most, over time.</summary>
    public const int ErrorsPerSecond = 100;

    /// <summary>ICMPv6 destination unreachable, code 4: port unreachable (RFC 4443 3.1).</summary>
    private const byte Icmpv6PortUnreachable = 4;

    /// <summary>ICMP destination unreachable, code 3: port unreachable (RFC 792).</summary>
    private const byte IcmpPortUnreachable = 3;

    private readonly Dictionary<FlowKey, IcmpFlow> _flows = [];
    private readonly List<FlowKey> _expired = [];
    private bool _unavailableLogged;
    private long _errorTokens = ErrorBurst;
    private long _errorRefillMs;

    public int Count => _flows.Count;

    /// <summary>Source: the relayed conversations with their ping sockets' identifiers. Caller holds the gateway lock.</summary>
    public void Export(List<Migration.DatagramFlowState> into, long nowMs)
    {
        foreach (var flow in _flows.Values)
        {
            if (!flow.IsClosed && flow.EndPoints is { } ends)
            {
                into.Add(new(flow.Key, true, ends.Local, ends.Remote, false, Math.Max(0, nowMs - flow.LastUsedMs)));
            }
        }
    }

    /// <summary>Source: the conversations went to the target; their sockets close. Caller holds the gateway lock.</summary>
    public void HandOver() => CloseAll();

    /// <summary>Target: opens the migrated conversations (same identifier where free). Caller holds the gateway lock.</summary>
    public List<IcmpFlow> Import(List<Migration.DatagramFlowState> states)
    {
        var opened = new List<IcmpFlow>();
        foreach (var state in states)
        {
            if (!state.Icmp || !state.Key.RemoteIp.IsIpv4 || _flows.ContainsKey(state.Key) || _flows.Count >= MaxFlows
                || !gateway.TryMapDestination(state.Key.RemoteIp, out var address, out _)
                || !IcmpFlow.TryOpen(address, gateway.Options.OutboundSourceFor(address), out var socket, out _, (ushort)state.Local.Port))
            {
                continue;
            }

            var flow = new IcmpFlow(gateway, state.Key, socket);
            _flows.Add(state.Key, flow);
            flow.Start(state.IdleMs);
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

    /// <summary>An ICMP message from the guest. Caller holds the gateway lock.</summary>
    public void OnIcmp(uint source, uint destination, ReadOnlySpan<byte> bytes)
    {
        if (!IcmpPacket.TryParse(bytes, out var icmp))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!icmp.IsChecksumValid)
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        if (icmp.Type != IcmpType.EchoRequest || icmp.Code != 0)
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        if (destination != gateway.GatewayIp && destination != gateway.DnsIp)
        {
            Relay(IpAddr.FromIpv4(source), IpAddr.FromIpv4(destination), icmp.Identifier, icmp.Bytes);
            return;
        }

        var frame = gateway.RentIpv4(icmp.Bytes.Length);
        var reply = frame.Span[Gateway.Ipv4PayloadOffset..];
        icmp.Data.CopyTo(reply[IcmpPacket.HeaderLength..]);
        IcmpHeader.Echo(IcmpType.EchoReply, icmp.Identifier, icmp.SequenceNumber).WriteTo(reply);
        gateway.EmitIpv4(frame, IpProtocol.Icmp, destination, source);
    }

    /// <summary>
    /// An ICMPv6 message from the guest; <paramref name="fromPrefix"/> says its source is in the
    /// guest's /64 (else it is link-local or ::, which reach only the gateway itself). Caller
    /// holds the gateway lock.
    /// </summary>
    public void OnIcmpv6(IpAddr source, IpAddr destination, byte hopLimit, bool fromPrefix, ReadOnlySpan<byte> bytes)
    {
        if (!Icmpv6Packet.TryParse(bytes, out var icmp))
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!icmp.IsChecksumValid(PseudoHeader.Create(source, destination, IpProtocol.Icmpv6)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        switch (icmp.Type)
        {
            case Icmpv6Type.RouterSolicitation or Icmpv6Type.RouterAdvertisement or Icmpv6Type.NeighborSolicitation
                or Icmpv6Type.NeighborAdvertisement or Icmpv6Type.Redirect:
                gateway.Ndp.OnMessage(source, destination, hopLimit, icmp);
                return;
            case Icmpv6Type.EchoRequest when icmp.Code == 0 && !source.IsIpv6Unspecified:
                break;
            case var _ when icmp.IsError:
                // The guest's own errors (say, a port unreachable for a forwarded datagram) are
                // not relayed; one whose quote is not an IPv6 header is counted apart.
                gateway.Counters.Drop(icmp.TryGetQuotedPacket(out _) ? StackDrop.Ignored : StackDrop.BadIcmpError);
                return;
            default:
                gateway.Counters.Drop(StackDrop.Ignored);
                return;
        }

        if (gateway.IsOwnIpv6(destination))
        {
            var frame = gateway.RentIp(source, icmp.Bytes.Length);
            var reply = frame.Span[Gateway.Ipv6PayloadOffset..];
            icmp.Data.CopyTo(reply[Icmpv6Packet.HeaderLength..]);
            Icmpv6Header.Echo(Icmpv6Type.EchoReply, icmp.Identifier, icmp.SequenceNumber)
                .WriteTo(reply, PseudoHeader.Create(destination, source, IpProtocol.Icmpv6));
            gateway.EmitIpv6(frame, IpProtocol.Icmpv6, destination, source, hopLimit: 64);
            return;
        }

        if (!fromPrefix || destination.IsIpv6Multicast)
        {
            gateway.Counters.Drop(destination.IsIpv6Multicast ? StackDrop.Ignored : StackDrop.BadAddress);
            return;
        }

        Relay(source, destination, icmp.Identifier, icmp.Bytes);
    }

    private void Relay(IpAddr source, IpAddr destination, ushort identifier, ReadOnlySpan<byte> echo)
    {
        // The echo identifier stands in for the guest's port, as in a NAPT for ICMP (RFC 5508 3.1).
        var key = new FlowKey(source, identifier, destination, 0);
        if (!_flows.TryGetValue(key, out var flow))
        {
            if (!gateway.TryMapDestination(destination, out var address, out var refusal))
            {
                gateway.Counters.Drop(refusal);
                return;
            }

            if (_flows.Count >= MaxFlows)
            {
                gateway.Counters.Drop(StackDrop.IcmpFlowLimit);
                return;
            }

            if (!IcmpFlow.TryOpen(address, gateway.Options.OutboundSourceFor(address), out var socket, out var error))
            {
                gateway.Counters.Drop(StackDrop.IcmpForwardUnavailable);
                if (!_unavailableLogged)
                {
                    _unavailableLogged = true;
                    StackLog.IcmpUnavailable(gateway.Logger, error.ToString(), error == SocketError.AccessDenied
                        ? "net.ipv4.ping_group_range does not include this process's groups"
                        : "the host refused an unprivileged ICMP socket");
                }

                return;
            }

            flow = new IcmpFlow(gateway, key, socket);
            _flows.Add(key, flow);
            flow.Start();
        }

        flow.Send(echo, gateway.NowMs);
    }

    /// <summary>
    /// Tells the guest that the far end of a UDP flow has no socket on its port: an ICMP or ICMPv6
    /// port unreachable from the flow's remote address, quoting the flow's IP and UDP headers.
    /// Caller holds the gateway lock.
    /// </summary>
    public void SendPortUnreachable(FlowKey key)
    {
        if (!TryTakeErrorToken())
        {
            gateway.Counters.Drop(StackDrop.IcmpRateLimited);
            return;
        }

        var ipHeader = Gateway.IpHeaderLength(key.GuestIp);
        var quoted = ipHeader + UdpPacket.HeaderLength;
        var frame = gateway.RentIp(key.GuestIp, IcmpPacket.HeaderLength + quoted);
        var message = frame.Span[Gateway.PayloadOffset(key.GuestIp)..];
        var quote = message[IcmpPacket.HeaderLength..];

        // The datagram as the guest sent it: from its port to the remote's, 8 bytes of UDP with
        // no data and no checksum (the guest's stack matches addresses and ports only).
        if (key.GuestIp.IsIpv4)
        {
            new Ipv4Header(key.GuestIp.Ipv4, key.RemoteIp.Ipv4, IpProtocol.Udp, UdpPacket.HeaderLength).WriteTo(quote);
        }
        else
        {
            new Ipv6Header(key.GuestIp, key.RemoteIp, IpProtocol.Udp, UdpPacket.HeaderLength).WriteTo(quote);
        }

        var udp = quote[ipHeader..];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(udp, key.GuestPort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(udp[2..], key.RemotePort);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(udp[4..], UdpPacket.HeaderLength);
        udp[6..8].Clear();

        if (key.GuestIp.IsIpv4)
        {
            new IcmpHeader(IcmpType.DestinationUnreachable, IcmpPortUnreachable, 0).WriteTo(message);
            gateway.EmitIpv4(frame, IpProtocol.Icmp, key.RemoteIp.Ipv4, key.GuestIp.Ipv4);
        }
        else
        {
            new Icmpv6Header(Icmpv6Type.DestinationUnreachable, Icmpv6PortUnreachable, 0)
                .WriteTo(message, PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Icmpv6));
            gateway.EmitIpv6(frame, IpProtocol.Icmpv6, key.RemoteIp, key.GuestIp, hopLimit: 64);
        }
    }

    /// <summary>A token bucket of <see cref="ErrorBurst"/>, refilled at <see cref="ErrorsPerSecond"/>.</summary>
    private bool TryTakeErrorToken()
    {
        var now = gateway.NowMs;
        var earned = (now - _errorRefillMs) * ErrorsPerSecond / 1000;
        if (earned > 0)
        {
            _errorTokens = Math.Min(ErrorBurst, _errorTokens + earned);
            _errorRefillMs = now;
        }

        if (_errorTokens == 0)
        {
            return false;
        }

        _errorTokens--;
        return true;
    }

    /// <summary>Closes idle conversations. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs) => Nat.DatagramFlowTable.ExpireIdle(_flows, _expired, nowMs, static _ => IdleTimeoutMs);

    /// <summary>Closes every conversation. Caller holds the gateway lock.</summary>
    public void CloseAll() => Nat.DatagramFlowTable.CloseAll(_flows);
}
