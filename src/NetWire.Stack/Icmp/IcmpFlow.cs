using System.Net;
using System.Net.Sockets;
using NetWire.Core.Packets;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Icmp;

/// <summary>
/// One relayed ping conversation: the guest's echo identifier towards one destination, over an
/// unprivileged ICMP socket (SOCK_DGRAM, IPPROTO_ICMP; IPPROTO_ICMPV6 for an IPv6 destination)
/// connected to the destination. The kernel gives the socket its own identifier and fills in the
/// checksum; replies get the guest's identifier back and come from the address the guest pinged.
/// The key's guest port is the guest's echo identifier.
/// </summary>
internal sealed class IcmpFlow(Gateway gateway, FlowKey key, Socket socket) : DatagramFlow(gateway, socket)
{
    /// <summary>
    /// Opens the socket, bound to <paramref name="source"/> (the gateway's outbound address) when
    /// given. Fails with the socket error when the host does not allow unprivileged ICMP sockets to
    /// this process's groups (net.ipv4.ping_group_range), has no ICMP, or no longer has the source address.
    /// </summary>
    public static bool TryOpen(IPAddress destination, IPAddress? source, out Socket socket, out SocketError error, ushort identifier = 0)
    {
        socket = null!;
        try
        {
            socket = destination.AddressFamily == AddressFamily.InterNetworkV6
                ? new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.IcmpV6)
                : new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Icmp);
        }
        catch (SocketException ex)
        {
            error = ex.SocketErrorCode;
            return false;
        }

        try
        {
            socket.Blocking = false;
            var any = destination.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
            var bound = false;
            if (identifier != 0)
            {
                // A migrated conversation keeps the kernel's echo identifier (a ping socket's port) when it is free.
                try
                {
                    socket.Bind(new IPEndPoint(source ?? any, identifier));
                    bound = true;
                }
                catch (SocketException)
                {
                }
            }

            if (!bound && source is not null)
            {
                socket.Bind(new IPEndPoint(source, 0));
            }

            socket.Connect(new IPEndPoint(destination, 0));
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            error = ex.SocketErrorCode;
            return false;
        }

        error = SocketError.Success;
        return true;
    }

    /// <summary>The guest's side of the conversation (its port is the guest's echo identifier).</summary>
    public FlowKey Key => key;

    public void Start(long idleMs = 0)
    {
        LastUsedMs = Gateway.NowMs - idleMs;
        StartReceiving();
    }

    protected override void Deliver(ReadOnlySpan<byte> bytes)
    {
        if (!key.GuestIp.IsIpv4)
        {
            DeliverIpv6(bytes);
            return;
        }

        // The kernel passes only echo replies to a ping socket, but check what is relayed.
        if (!IcmpPacket.TryParse(bytes, out var reply))
        {
            Gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (reply.Type != IcmpType.EchoReply || bytes.Length + Ipv4Packet.MinHeaderLength > Gateway.Options.Mtu)
        {
            Gateway.Counters.Drop(reply.Type == IcmpType.EchoReply ? StackDrop.BadLength : StackDrop.Ignored);
            return;
        }

        var frame = Gateway.RentIpv4(bytes.Length);
        var icmp = frame.Span[Gateway.Ipv4PayloadOffset..];
        reply.Data.CopyTo(icmp[IcmpPacket.HeaderLength..]);
        new IcmpHeader(reply.Type, reply.Code, ((uint)key.GuestPort << 16) | reply.SequenceNumber).WriteTo(icmp);
        Gateway.EmitIpv4(frame, IpProtocol.Icmp, key.RemoteIp.Ipv4, key.GuestIp.Ipv4);
    }

    private void DeliverIpv6(ReadOnlySpan<byte> bytes)
    {
        if (!Icmpv6Packet.TryParse(bytes, out var reply))
        {
            Gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (reply.Type != Icmpv6Type.EchoReply || bytes.Length + Ipv6Packet.HeaderLength > Gateway.Options.Mtu)
        {
            Gateway.Counters.Drop(reply.Type == Icmpv6Type.EchoReply ? StackDrop.BadLength : StackDrop.Ignored);
            return;
        }

        var frame = Gateway.RentIp(key.GuestIp, bytes.Length);
        var icmp = frame.Span[Gateway.Ipv6PayloadOffset..];
        reply.Data.CopyTo(icmp[Icmpv6Packet.HeaderLength..]);
        Icmpv6Header.Echo(Icmpv6Type.EchoReply, key.GuestPort, reply.SequenceNumber)
            .WriteTo(icmp, PseudoHeader.Create(key.RemoteIp, key.GuestIp, IpProtocol.Icmpv6));
        Gateway.EmitIpv6(frame, IpProtocol.Icmpv6, key.RemoteIp, key.GuestIp, hopLimit: 64);
    }
}
