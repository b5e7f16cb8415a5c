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
