namespace NetWire.Core.Packets;

/// <summary>IP protocol numbers (the IPv4 Protocol field, the IPv6 Next Header), as IANA assigns them.</summary>
public enum IpProtocol : byte
{
    /// <summary>IPv6 hop-by-hop options (RFC 8200 4.3).</summary>
    Ipv6HopByHop = 0,

    /// <summary>ICMP for IPv4 (RFC 792).</summary>
    Icmp = 1,

    /// <summary>TCP (RFC 9293).</summary>
    Tcp = 6,

    /// <summary>UDP (RFC 768).</summary>
    Udp = 17,

    /// <summary>IPv6 routing header (RFC 8200 4.4).</summary>
    Ipv6Routing = 43,

    /// <summary>IPv6 fragment header (RFC 8200 4.5).</summary>
    Ipv6Fragment = 44,

    /// <summary>ICMP for IPv6 (RFC 4443).</summary>
    Icmpv6 = 58,

    /// <summary>No next header (RFC 8200 4.7).</summary>
    Ipv6NoNextHeader = 59,

    /// <summary>IPv6 destination options (RFC 8200 4.6).</summary>
    Ipv6DestinationOptions = 60,
}
