namespace NetWire.Stack;

/// <summary>Why the gateway dropped a packet from the guest, refused a flow, or could not send. Each is counted.</summary>
public enum StackDrop
{
    /// <summary>An Ethernet type the gateway does not speak (VLAN, ...; IPv6 with --no-ipv6).</summary>
    UnsupportedEtherType,

    /// <summary>A header shorter than its fixed part, a length field past the frame (an IPv6 payload length, an extension header), or a bad IHL / data offset.</summary>
    BadLength,

    /// <summary>An IPv4 header or TCP/UDP/ICMP checksum that does not verify.</summary>
    BadChecksum,

    /// <summary>An IPv4 fragment or an IPv6 packet with a fragment header: not reassembled (a guest using PMTU discovery never sends them).</summary>
    Fragment,

    /// <summary>A packet with TTL (IPv4) or hop limit (IPv6) 0.</summary>
    TtlExpired,

    /// <summary>An IP protocol other than ICMP, TCP and UDP.</summary>
    UnsupportedProtocol,

    /// <summary>TCP, DHCP, DHCPv6 or neighbour discovery options that do not parse, or an IPv6 option that is malformed or unknown with a discard action.</summary>
    BadOptions,

    /// <summary>A source address outside the guest network (or the gateway's own), or a destination that makes no sense (broadcast, multicast, 0.0.0.0, ::, link-local).</summary>
    BadAddress,

    /// <summary>A TCP segment for no known connection (answered with RST unless it is one).</summary>
    UnknownFlow,

    /// <summary>A SYN refused because the half-open table was full.</summary>
    SynFlood,

    /// <summary>A SYN refused because the connection table was full.</summary>
    ConnectionLimit,

    /// <summary>A UDP datagram refused because the flow table was full.</summary>
    UdpFlowLimit,

    /// <summary>A destination the outbound policy refuses (deny list, or host loopback without --allow-host-loopback).</summary>
    Denied,

    /// <summary>A frame towards the guest not sent because the guest end was full (a datagram, ARP or control segment; TCP data waits instead).</summary>
    GuestFull,

    /// <summary>A TCP segment outside the receive window, or an ACK for data never sent.</summary>
    OutOfWindow,

    /// <summary>A DNS query with no upstream resolver configured or found, or with DNS forwarding off (slirp4netns --disable-dns).</summary>
    NoDnsServer,

    /// <summary>An ICMP echo to an outside address while unprivileged ICMP sockets are not allowed (net.ipv4.ping_group_range).</summary>
    IcmpForwardUnavailable,

    /// <summary>An ICMP echo that would open a relayed ping conversation while the table was full.</summary>
    IcmpFlowLimit,

    /// <summary>ICMP other than echo request, or ARP/DHCP that is not for the gateway.</summary>
    Ignored,

    /// <summary>A host socket failed to send a datagram.</summary>
    HostSendFailed,

    /// <summary>A destination refused by <c>--restrict</c>: neither a service of the gateway nor a configured forward.</summary>
    Restricted,

    /// <summary>A TFTP packet the server refused: a bad or oversized request, a write request, a path outside the folder, an unknown transfer.</summary>
    TftpRefused,

    /// <summary>An IPv6 jumbogram (RFC 2675): payload length 0 with a hop-by-hop header, or a jumbo payload option.</summary>
    Jumbogram,

    /// <summary>An IPv6 extension-header chain that is too long (over 8), out of order (hop-by-hop not first) or repeats a header.</summary>
    ExtensionHeader,

    /// <summary>An IPv6 routing header of type 0 (RFC 5095) or with segments left.</summary>
    RoutingHeader,

    /// <summary>A neighbour discovery message that fails RFC 4861's checks (hop limit not 255, code not 0, multicast target, a bad duplicate address detection probe).</summary>
    NdpInvalid,

    /// <summary>A router advertisement or redirect from the guest, or a neighbour advertisement claiming one of the gateway's addresses.</summary>
    NdpSpoof,

    /// <summary>An ICMPv6 error from the guest whose quoted packet is not an IPv6 header.</summary>
    BadIcmpError,

    /// <summary>An ICMP error the gateway would have sent (port unreachable) beyond the rate limit (RFC 4443 2.4(f)).</summary>
    IcmpRateLimited,
}
