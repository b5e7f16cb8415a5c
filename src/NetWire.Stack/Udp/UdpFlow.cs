using System.Net;
using System.Net.Sockets;

using NetWire.Stack.Nat;

namespace NetWire.Stack.Udp;

/// <summary>
/// One UDP flow: a host socket (of the destination's family, which for DNS is the resolver's,
/// not the guest's) connected to the real destination; datagrams from it reach the guest from
/// the address the guest used.
/// </summary>
internal sealed class UdpFlow(Gateway gateway, FlowKey key, IPEndPoint target, TimeSpan idleTimeout)
    : DatagramFlow(gateway, new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp))
{
    public long IdleTimeoutMs { get; } = (long)idleTimeout.TotalMilliseconds;

    /// <summary>The guest's side of the flow.</summary>
    public FlowKey Key => key;

    /// <summary>True for a flow to the DNS address.</summary>
    public bool IsDns { get; init; }

    /// <summary>
    /// Connects the host socket, bound first to the gateway's outbound address when it has one
    /// for the target (<see cref="GatewayOptions.OutboundSourceFor"/>); a migrated flow first binds
    /// the source's local address and port when they are free here, so replies already on their
    /// way still find it.
    /// </summary>
    public void Start(IPEndPoint? local = null, long idleMs = 0)
    {
        LastUsedMs = Gateway.NowMs - idleMs;
        var outbound = Gateway.Options.OutboundSourceFor(target.Address);
        try
        {
            Socket.Blocking = false;
            var any = target.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
            var bound = local is not null && (TryBind(local) || TryBind(new IPEndPoint(outbound ?? any, local.Port)));
            if (!bound && outbound is not null)
            {
                // A new flow, or a migrated one whose port is taken here: the kernel picks the port.
                Socket.Bind(new IPEndPoint(outbound, 0));
            }

            Socket.Connect(target);
        }
        catch (SocketException)
        {
            Gateway.Counters.Drop(StackDrop.HostSendFailed);
            Close();
            return;
        }

        StartReceiving();
    }

    private bool TryBind(IPEndPoint local)
    {
        try
        {
            Socket.Bind(local);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    protected override void Deliver(ReadOnlySpan<byte> datagram) => UdpNat.EmitToGuest(Gateway, key, datagram);

    protected override void OnPortUnreachable() => Gateway.Icmp.SendPortUnreachable(key);
}
