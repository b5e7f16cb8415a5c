namespace NetWire.Stack;

/// <summary>Why the gateway dropped a packet from the guest, refused a flow, or could not send. Each is counted.</summary>
public enum StackDrop
{
    /// <summary>An Ethernet type the gateway does not speak (IPv6, VLAN, ...).</summary>
    UnsupportedEtherType,

    /// <summary>A header shorter than its fixed part, a length field past the frame, or a bad IHL / data offset.</summary>
    BadLength,

    /// <summary>An IPv4 header or TCP/UDP/ICMP checksum that does not verify.</summary>
    BadChecksum,

    /// <summary>An IPv4 fragment: not reassembled (a guest using PMTU discovery never sends them).</summary>
    Fragment,

    /// <summary>A packet with TTL 0.</summary>
    TtlExpired,

    /// <summary>An IP protocol other than ICMP, TCP and UDP.</summary>
    UnsupportedProtocol,

    /// <summary>IPv4 options or TCP options that do not parse.</summary>
    BadOptions,

    /// <summary>A source address outside the guest network, or a destination that makes no sense (broadcast, multicast, 0.0.0.0).</summary>
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

    /// <summary>A DNS query with no upstream resolver configured or found.</summary>
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
}
