using System.Buffers.Binary;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Dhcp;

/// <summary>
/// A DHCP server (RFC 2131, options RFC 2132) for the guest network.
/// </summary>
/// <remarks>
/// How this works: leases are kept per client MAC in a small table the size of the pool
/// (slirp's 16 addresses from 10.0.2.15). DISCOVER gets an OFFER of the client's lease or the
/// first free address; REQUEST gets an ACK when it names that address (option 50 or ciaddr)
/// and this server (option 54, when present), else a NAK; RELEASE frees the lease. Replies go
/// to the broadcast address from the gateway, carrying mask, router, DNS, lease time and MTU.
/// INFORM and DECLINE are ignored (counted). The acknowledged address becomes the wire end's
/// GuestIp.
/// </remarks>
internal sealed class DhcpServer(Gateway gateway)
{
    private const int BootpLength = 236;
    private const uint MagicCookie = 0x63825363;
    private const byte Discover = 1;
    private const byte Offer = 2;
    private const byte Request = 3;
    private const byte Ack = 5;
    private const byte Nak = 6;
    private const byte Release = 7;

    private readonly Lease[] _leases = new Lease[gateway.Options.DhcpPoolSize];

    private struct Lease
    {
        public ulong Mac;
        public long ExpiresMs;
        public bool InUse;
    }

    /// <summary>A BOOTP request on UDP port 67. Caller holds the gateway lock.</summary>
    public void OnRequest(ReadOnlySpan<byte> bootp)
    {
        if (bootp.Length < BootpLength + 4 || bootp[0] != 1 || bootp[1] != 1 || bootp[2] != 6
            || BinaryPrimitives.ReadUInt32BigEndian(bootp[BootpLength..]) != MagicCookie)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        byte type = 0;
        uint requested = 0, serverId = 0;
        var options = bootp[(BootpLength + 4)..];
        while (options.Length > 0 && options[0] != 255)
        {
            if (options[0] == 0)
            {
                options = options[1..];
                continue;
            }

            if (options.Length < 2 || options.Length < 2 + options[1])
            {
                gateway.Counters.Drop(StackDrop.BadOptions);
                return;
            }

            var value = options.Slice(2, options[1]);
            switch (options[0])
            {
                case 53 when value.Length == 1:
                    type = value[0];
                    break;
                case 50 when value.Length == 4:
                    requested = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
                case 54 when value.Length == 4:
                    serverId = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
            }

            options = options[(2 + value.Length)..];
        }

        var mac = ReadMac(bootp.Slice(28, 6));
        var ciaddr = BinaryPrimitives.ReadUInt32BigEndian(bootp[12..]);
        var now = gateway.NowMs;
        switch (type)
        {
            case Discover:
            {
                var index = Find(mac, now, allocate: true);
                if (index < 0)
                {
                    gateway.Counters.Drop(StackDrop.Ignored);
                    return;
                }

                Reply(bootp, Offer, AddressOf(index));
                break;
            }

            case Request:
            {
                if (serverId != 0 && serverId != gateway.GatewayIp)
                {
                    return;
                }

                var wanted = requested != 0 ? requested : ciaddr;
                var index = Find(mac, now, allocate: true);
                if (index < 0 || wanted != AddressOf(index))
                {
                    Reply(bootp, Nak, 0);
                    return;
                }

                _leases[index].ExpiresMs = now + (long)gateway.Options.LeaseTime.TotalMilliseconds;
                Reply(bootp, Ack, wanted);
                gateway.SetGuestIp(wanted);
                gateway.Counters.DhcpLease();
                break;
            }

            case Release:
            {
                var index = Find(mac, now, allocate: false);
                if (index >= 0)
                {
                    _leases[index] = default;
                }

                break;
            }

            default:
                gateway.Counters.Drop(StackDrop.Ignored);
                break;
        }
    }

    private uint AddressOf(int index) => Ip.ToUInt(gateway.Options.DhcpStart) + (uint)index;

    /// <summary>Leases in use and not expired, as (pool index, MAC, ms left), for the migration state. Caller holds the gateway lock.</summary>
    public List<(int Index, ulong Mac, long MillisecondsLeft)> ExportLeases()
    {
        var now = gateway.NowMs;
        var list = new List<(int, ulong, long)>();
        for (var i = 0; i < _leases.Length; i++)
        {
            if (_leases[i].InUse && _leases[i].ExpiresMs > now)
            {
                list.Add((i, _leases[i].Mac, _leases[i].ExpiresMs - now));
            }
        }

        return list;
    }

    /// <summary>Replaces the lease table with exported leases (indexes already checked against the pool). Caller holds the gateway lock.</summary>
    public void ImportLeases(IEnumerable<(int Index, ulong Mac, long MillisecondsLeft)> leases)
    {
        var now = gateway.NowMs;
        Array.Clear(_leases);
        foreach (var (index, mac, left) in leases)
        {
            _leases[index] = new Lease { Mac = mac, ExpiresMs = now + left, InUse = true };
        }
    }

    /// <summary>The client's lease, else (when allowed) the first free or expired slot; -1 when the pool is full.</summary>
    private int Find(ulong mac, long now, bool allocate)
    {
        var free = -1;
        for (var i = 0; i < _leases.Length; i++)
        {
            if (_leases[i].InUse && _leases[i].Mac == mac)
            {
                return i;
            }

            if (free < 0 && (!_leases[i].InUse || _leases[i].ExpiresMs < now))
            {
                free = i;
            }
        }

        if (!allocate || free < 0)
        {
            return -1;
        }

        // An offered but never requested lease holds its slot for one minute.
        _leases[free] = new Lease { Mac = mac, ExpiresMs = now + 60_000, InUse = true };
        return free;
    }

    private static ulong ReadMac(ReadOnlySpan<byte> mac)
    {
        ulong value = 0;
        for (var i = 0; i < 6; i++)
        {
            value = (value << 8) | mac[i];
        }

        return value;
    }

    private void Reply(ReadOnlySpan<byte> request, byte type, uint yourAddress)
    {
        const int optionsLength = 3 + 6 + 6 + 6 + 6 + 6 + 4 + 1;
        var bootpLength = BootpLength + 4 + optionsLength;
        var udpLength = 8 + bootpLength;
        var frame = gateway.RentIpv4(udpLength);
        var udp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        udp.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(udp, 67);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], 68);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udpLength);
        var bootp = udp[8..];
        bootp[0] = 2;
        bootp[1] = 1;
        bootp[2] = 6;
        request.Slice(4, 4).CopyTo(bootp[4..]);
        request.Slice(10, 2).CopyTo(bootp[10..]);
        request.Slice(24, 4).CopyTo(bootp[24..]);
        request.Slice(28, 16).CopyTo(bootp[28..]);
        BinaryPrimitives.WriteUInt32BigEndian(bootp[16..], yourAddress);
        BinaryPrimitives.WriteUInt32BigEndian(bootp[BootpLength..], MagicCookie);
        var o = bootp[(BootpLength + 4)..];
        o[0] = 53;
        o[1] = 1;
        o[2] = type;
        o = o[3..];
        o = Option(o, 54, gateway.GatewayIp);
        if (type != Nak)
        {
            o = Option(o, 51, (uint)gateway.Options.LeaseTime.TotalSeconds);
            o = Option(o, 1, gateway.Options.Network.Mask);
            o = Option(o, 3, gateway.GatewayIp);
            o = Option(o, 6, gateway.DnsIp);
            o[0] = 26;
            o[1] = 2;
            BinaryPrimitives.WriteUInt16BigEndian(o[2..], (ushort)gateway.Options.Mtu);
            o = o[4..];
        }

        o[0] = 255;
        var sum = Checksum.AddPseudoHeader(0, gateway.GatewayIp, 0xffffffff, Gateway.ProtocolUdp, udpLength);
        var checksum = Checksum.Finish(Checksum.Add(sum, udp[..udpLength]));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], checksum == 0 ? (ushort)0xffff : checksum);
        gateway.EmitIpv4(frame, Gateway.ProtocolUdp, gateway.GatewayIp, 0xffffffff, broadcast: true);
    }

    private static Span<byte> Option(Span<byte> o, byte code, uint value)
    {
        o[0] = code;
        o[1] = 4;
        BinaryPrimitives.WriteUInt32BigEndian(o[2..], value);
        return o[6..];
    }
}
