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

    public void Start()
    {
        try
        {
            Socket.Blocking = false;
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

    protected override void Deliver(ReadOnlySpan<byte> datagram) => UdpNat.EmitToGuest(Gateway, key, datagram);

    protected override void OnPortUnreachable() => Gateway.Icmp.SendPortUnreachable(key);
}
