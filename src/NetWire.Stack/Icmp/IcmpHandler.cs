using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Icmp;

/// <summary>
/// ICMP (RFC 792): echo requests to the gateway's own addresses are answered here; echo requests
/// to other addresses the outbound policy permits are relayed through unprivileged ICMP sockets
/// (one <see cref="IcmpFlow"/> per guest identifier and destination, closed after
/// <see cref="IdleTimeoutMs"/> without traffic, at most <see cref="MaxFlows"/>). Where the host
/// does not allow such sockets (net.ipv4.ping_group_range does not cover the gateway's groups),
/// the echo is dropped and counted as <see cref="StackDrop.IcmpForwardUnavailable"/>. Other ICMP
/// types are ignored and counted.
/// </summary>
internal sealed class IcmpHandler(Gateway gateway)
{
    /// <summary>Relayed ping conversations open at once.</summary>
    public const int MaxFlows = 64;

    /// <summary>A relayed conversation with no echo for this long is closed.</summary>
    public const long IdleTimeoutMs = 30_000;

    private readonly Dictionary<FlowKey, IcmpFlow> _flows = [];
    private readonly List<FlowKey> _expired = [];
    private bool _unavailableLogged;

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
                || !gateway.TryMapDestination(state.Key.RemoteIp.Ipv4, out var address, out _)
                || !IcmpFlow.TryOpen(address, out var socket, out _, (ushort)state.Local.Port))
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

    /// <summary>Caller holds the gateway lock.</summary>
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
            Relay(source, destination, icmp);
            return;
        }

        var frame = gateway.RentIpv4(icmp.Bytes.Length);
        var reply = frame.Span[Gateway.Ipv4PayloadOffset..];
        icmp.Data.CopyTo(reply[IcmpPacket.HeaderLength..]);
        IcmpHeader.Echo(IcmpType.EchoReply, icmp.Identifier, icmp.SequenceNumber).WriteTo(reply);
        gateway.EmitIpv4(frame, IpProtocol.Icmp, destination, source);
    }

    private void Relay(uint source, uint destination, IcmpPacket echo)
    {
        // The echo identifier stands in for the guest's port, as in a NAPT for ICMP (RFC 5508 3.1).
        var key = new FlowKey(IpAddr.FromIpv4(source), echo.Identifier, IpAddr.FromIpv4(destination), 0);
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

            if (!IcmpFlow.TryOpen(address, out var socket, out var error))
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

        flow.Send(echo.Bytes, gateway.NowMs);
    }

    /// <summary>Closes idle conversations. Caller holds the gateway lock.</summary>
    public void OnTimer(long nowMs) => Nat.DatagramFlowTable.ExpireIdle(_flows, _expired, nowMs, static _ => IdleTimeoutMs);

    /// <summary>Closes every conversation. Caller holds the gateway lock.</summary>
    public void CloseAll() => Nat.DatagramFlowTable.CloseAll(_flows);
}
