using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NetWire.Stack.Ipv4;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Icmp;

/// <summary>
/// One relayed ping conversation: the guest's echo identifier towards one destination, over an
/// unprivileged ICMP socket (SOCK_DGRAM, IPPROTO_ICMP) connected to the destination. The kernel
/// gives the socket its own identifier and fills in the checksum; replies get the guest's
/// identifier back and come from the address the guest pinged.
/// </summary>
internal sealed class IcmpFlow(Gateway gateway, IcmpFlowKey key, Socket socket) : DatagramFlow(gateway, socket)
{
    /// <summary>
    /// Opens the socket. Fails with the socket error when the host does not allow unprivileged
    /// ICMP sockets to this process's groups (net.ipv4.ping_group_range) or has no ICMP.
    /// </summary>
    public static bool TryOpen(IPAddress destination, out Socket socket, out SocketError error)
    {
        socket = null!;
        try
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Icmp);
        }
        catch (SocketException ex)
        {
            error = ex.SocketErrorCode;
            return false;
        }

        try
        {
            socket.Blocking = false;
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

    public void Start() => StartReceiving();

    protected override void Deliver(ReadOnlySpan<byte> reply)
    {
        // The kernel passes only echo replies to a ping socket, but check what is relayed.
        if (reply.Length < 8 || reply[0] != 0 || reply.Length + Gateway.Ipv4HeaderLength > Gateway.Options.Mtu)
        {
            Gateway.Counters.Drop(reply.Length < 8 || reply[0] == 0 ? StackDrop.BadLength : StackDrop.Ignored);
            return;
        }

        var frame = Gateway.RentIpv4(reply.Length);
        var icmp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        reply.CopyTo(icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], key.Identifier);
        icmp[2] = 0;
        icmp[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
        Gateway.EmitIpv4(frame, Gateway.ProtocolIcmp, key.RemoteIp, key.GuestIp);
    }
}

/// <summary>A relayed ping conversation: the guest, its echo identifier, and the address it pings.</summary>
internal readonly record struct IcmpFlowKey(uint GuestIp, ushort Identifier, uint RemoteIp);
