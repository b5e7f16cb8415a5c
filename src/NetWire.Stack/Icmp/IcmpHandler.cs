using System.Buffers.Binary;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Icmp;

/// <summary>
/// ICMP (RFC 792): echo requests to the gateway's own addresses are answered here. Echo to an
/// outside address would need an unprivileged ICMP socket (net.ipv4.ping_group_range); that
/// relay is not built yet, so such pings are dropped and counted as
/// <see cref="StackDrop.IcmpForwardUnavailable"/>. Other ICMP types are ignored and counted.
/// </summary>
internal sealed class IcmpHandler(Gateway gateway)
{
    /// <summary>Caller holds the gateway lock.</summary>
    public void OnIcmp(uint source, uint destination, byte ttl, ReadOnlySpan<byte> icmp)
    {
        _ = ttl;
        if (icmp.Length < 8)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        if (!Checksum.IsValid(Checksum.Add(0, icmp)))
        {
            gateway.Counters.Drop(StackDrop.BadChecksum);
            return;
        }

        if (icmp[0] != 8 || icmp[1] != 0)
        {
            gateway.Counters.Drop(StackDrop.Ignored);
            return;
        }

        if (destination != gateway.GatewayIp && destination != gateway.DnsIp)
        {
            gateway.Counters.Drop(StackDrop.IcmpForwardUnavailable);
            return;
        }

        var frame = gateway.RentIpv4(icmp.Length);
        var reply = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        icmp.CopyTo(reply);
        reply[0] = 0;
        reply[2] = 0;
        reply[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(reply[2..], Checksum.Compute(reply));
        gateway.EmitIpv4(frame, Gateway.ProtocolIcmp, destination, source);
    }

    /// <summary>Nothing to close while echo is answered locally only.</summary>
    public static void CloseAll()
    {
    }
}
