namespace NetWire.Core.Packets;

/// <summary>EtherType values (IEEE 802.3 Length/Type above 0x0600) the appliance looks at.</summary>
public enum EtherType : ushort
{
    /// <summary>Not a known type.</summary>
    None = 0,

    /// <summary>IPv4 (RFC 894).</summary>
    Ipv4 = 0x0800,

    /// <summary>ARP (RFC 826).</summary>
    Arp = 0x0806,

    /// <summary>An IEEE 802.1Q VLAN tag follows.</summary>
    Vlan = 0x8100,

    /// <summary>IPv6 (RFC 2464).</summary>
    Ipv6 = 0x86DD,
}
