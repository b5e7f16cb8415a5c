using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Stack.Dhcp;

/// <summary>
/// A DHCP server (RFC 2131, options RFC 2132) for the guest network.
/// </summary>
/// <remarks>
/// How this works: leases are kept per client MAC in a small table the size of the pool
/// (slirp's 16 addresses from 10.0.2.15). DISCOVER gets an OFFER of the client's lease or the
/// first free address; REQUEST gets an ACK when it names that address (option 50 or ciaddr)
/// and this server (option 54, when present), else a NAK; RELEASE frees the lease. Replies go
/// to the broadcast address from the gateway, carrying mask, router, DNS, lease time and MTU,
/// then the configured extras (<see cref="DhcpExtraOptions"/>: host and domain name, search list,
/// TFTP server and bootfile, with the bootfile and the gateway in BOOTP's <c>file</c> and
/// <c>siaddr</c>). INFORM and DECLINE are ignored (counted). The acknowledged address becomes the
/// wire end's GuestIp.
/// </remarks>
internal sealed class DhcpServer(Gateway gateway)
{
    private readonly Lease[] _leases = new Lease[gateway.Options.DhcpPoolSize];
    private readonly byte[] _extraOptions = DhcpExtraOptions.Encode(gateway.Options, gateway.Options.GatewayIp.ToString());
    private readonly byte[] _bootFile = DhcpExtraOptions.BootFileField(gateway.Options);

    private struct Lease
    {
        public ulong Mac;
        public long ExpiresMs;
        public bool InUse;
    }

    /// <summary>A BOOTP request on UDP port 67. Caller holds the gateway lock.</summary>
    public void OnRequest(ReadOnlySpan<byte> bytes)
    {
        if (!DhcpPacket.TryParse(bytes, out var request) || request.Operation != DhcpPacket.BootRequest
            || request.HardwareType != 1 || request.HardwareLength != MacAddress.Length)
        {
            gateway.Counters.Drop(StackDrop.BadLength);
            return;
        }

        var type = DhcpMessageType.None;
        uint requested = 0, serverId = 0;
        var options = request.GetOptions();
        while (options.MoveNext())
        {
            var value = options.Value;
            switch (options.Code)
            {
                case DhcpOptionCode.MessageType when value.Length == 1:
                    type = (DhcpMessageType)value[0];
                    break;
                case DhcpOptionCode.RequestedAddress when value.Length == 4:
                    requested = Ip.Read(value);
                    break;
                case DhcpOptionCode.ServerIdentifier when value.Length == 4:
                    serverId = Ip.Read(value);
                    break;
            }
        }

        if (options.IsMalformed)
        {
            gateway.Counters.Drop(StackDrop.BadOptions);
            return;
        }

        var mac = request.ClientMac.ToUInt64();
        var ciaddr = request.ClientAddress;
        var now = gateway.NowMs;
        switch (type)
        {
            case DhcpMessageType.Discover:
            {
                var index = Find(mac, now, allocate: true);
                if (index < 0)
                {
                    gateway.Counters.Drop(StackDrop.Ignored);
                    return;
                }

                Reply(request, DhcpMessageType.Offer, AddressOf(index));
                break;
            }

            case DhcpMessageType.Request:
            {
                if (serverId != 0 && serverId != gateway.GatewayIp)
                {
                    return;
                }

                var wanted = requested != 0 ? requested : ciaddr;
                var index = Find(mac, now, allocate: true);
                if (index < 0 || wanted != AddressOf(index))
                {
                    Reply(request, DhcpMessageType.Nak, 0);
                    return;
                }

                _leases[index].ExpiresMs = now + (long)gateway.Options.LeaseTime.TotalMilliseconds;
                Reply(request, DhcpMessageType.Ack, wanted);
                gateway.SetGuestIp(wanted);
                gateway.Counters.DhcpLease();
                break;
            }

            case DhcpMessageType.Release:
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

    private void Reply(DhcpPacket request, DhcpMessageType type, uint yourAddress)
    {
        // Message type, server id, lease time, mask, router, DNS (2 + 1, 5 x (2 + 4)), MTU (2 + 2), End.
        var optionsLength = 3 + (5 * 6) + 4 + 1 + _extraOptions.Length;
        var udpLength = UdpPacket.HeaderLength + DhcpPacket.OptionsOffset + optionsLength;
        var frame = gateway.RentIpv4(udpLength);
        var udp = frame.Span.Slice(Gateway.Ipv4PayloadOffset, udpLength);
        var message = udp[UdpPacket.HeaderLength..];

        // RFC 2131 4.3.1: xid, flags, giaddr and chaddr come from the client's message.
        new DhcpHeader(DhcpPacket.BootReply, request.TransactionId, request.ClientMac)
        {
            Flags = request.Flags,
            RelayAddress = request.RelayAddress,
            YourAddress = yourAddress,
            ServerAddress = gateway.Options.TftpRoot is null ? 0 : gateway.GatewayIp,
        }.WriteTo(message);
        _bootFile.CopyTo(message[DhcpPacket.BootFileOffset..]);
        var options = new DhcpOptionWriter(message[DhcpPacket.OptionsOffset..]);
        options.Write(DhcpOptionCode.MessageType, (byte)type);
        options.Write(DhcpOptionCode.ServerIdentifier, gateway.GatewayIp);
        if (type != DhcpMessageType.Nak)
        {
            options.Write(DhcpOptionCode.LeaseTime, (uint)gateway.Options.LeaseTime.TotalSeconds);
            options.Write(DhcpOptionCode.SubnetMask, gateway.Options.Network.Mask);
            options.Write(DhcpOptionCode.Router, gateway.GatewayIp);
            options.Write(DhcpOptionCode.DomainNameServer, gateway.DnsIp);
            options.Write(DhcpOptionCode.InterfaceMtu, (ushort)gateway.Options.Mtu);
            options.WriteRaw(_extraOptions);
        }

        options.WriteEnd();
        message[(DhcpPacket.OptionsOffset + options.Written)..].Clear();
        new UdpHeader(67, 68).WriteTo(udp, PseudoHeader.Ipv4(gateway.GatewayIp, 0xffffffff, IpProtocol.Udp));
        gateway.EmitIpv4(frame, IpProtocol.Udp, gateway.GatewayIp, 0xffffffff, broadcast: true);
    }
}
