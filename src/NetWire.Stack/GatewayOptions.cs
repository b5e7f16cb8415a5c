using System.Net;
using NetWire.Core.Net;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Stack;

/// <summary>
/// The user-mode gateway's settings. The defaults are slirp's (QEMU <c>-netdev user</c>):
/// 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3, DHCP leases from 10.0.2.15; and for IPv6, on
/// unless turned off, slirp4netns's <c>--enable-ipv6</c> plan: fd00::/64, gateway fd00::2,
/// DNS fd00::3.
/// </summary>
public sealed record GatewayOptions
{
    /// <summary>The guest network.</summary>
    public Ipv4Cidr Network { get; init; } = Ipv4Cidr.Parse("10.0.2.0/24");

    /// <summary>The gateway's own address (router option, and host loopback when allowed).</summary>
    public IPAddress GatewayIp { get; init; } = IPAddress.Parse("10.0.2.2");

    /// <summary>The DNS address the guest is told about; queries to it go to <see cref="DnsUpstream"/>.</summary>
    public IPAddress DnsIp { get; init; } = IPAddress.Parse("10.0.2.3");

    /// <summary>IPv6 on the guest's link: router advertisements, neighbour discovery, ICMPv6, TCP and UDP over IPv6 (<c>--no-ipv6</c> turns it off).</summary>
    public bool Ipv6Enabled { get; init; } = true;

    /// <summary>The guest's IPv6 prefix, advertised for SLAAC; a /64 (RFC 4862 5.5.3 needs 64-bit interface identifiers on Ethernet).</summary>
    public IpNetwork Network6 { get; init; } = IpNetwork.Parse("fd00::/64");

    /// <summary>The gateway's IPv6 address in <see cref="Network6"/> (host loopback ::1 when allowed).</summary>
    public IPAddress GatewayIp6 { get; init; } = IPAddress.Parse("fd00::2");

    /// <summary>The IPv6 DNS address the guest is told about (RDNSS, DHCPv6); queries to it go to <see cref="DnsUpstream"/>.</summary>
    public IPAddress DnsIp6 { get; init; } = IPAddress.Parse("fd00::3");

    /// <summary>The first DHCP lease.</summary>
    public IPAddress DhcpStart { get; init; } = IPAddress.Parse("10.0.2.15");

    /// <summary>How many addresses the DHCP pool holds (slirp: 16).</summary>
    public int DhcpPoolSize { get; init; } = 16;

    /// <summary>DHCP lease time.</summary>
    public TimeSpan LeaseTime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>The link MTU: the DHCP MTU option, the router advertisement's MTU option, and the MSS the gateway offers (MTU - 40 over IPv4, MTU - 60 over IPv6).</summary>
    public int Mtu { get; init; } = 1500;

    /// <summary>Where DNS queries go (an IPv4 or IPv6 resolver); null reads the first nameserver of /etc/resolv.conf.</summary>
    public IPEndPoint? DnsUpstream { get; init; }

    /// <summary>No DNS forwarding: queries to the DNS addresses are dropped as NoDnsServer (slirp4netns's <c>--disable-dns</c>).</summary>
    public bool DnsDisabled { get; init; }

    /// <summary>Lets the guest reach the host's 127.0.0.1 through the gateway address, and ::1 through the IPv6 one (slirp's default; passt's map-gw).</summary>
    public bool AllowHostLoopback { get; init; }

    /// <summary>
    /// The source address of the gateway's IPv4 host sockets (<c>--outbound-addr</c>, slirp4netns's
    /// <c>--outbound-addr</c>): guest TCP connections, UDP flows (DNS included) and relayed pings
    /// bind to it before they connect. Not for a loopback destination (host loopback, a resolver on
    /// 127.0.0.53): that traffic never leaves the host and keeps a loopback source. Null lets the
    /// host's routing choose.
    /// </summary>
    public IPAddress? OutboundAddress { get; init; }

    /// <summary>As <see cref="OutboundAddress"/>, for the IPv6 host sockets (<c>--outbound-addr6</c>).</summary>
    public IPAddress? OutboundAddress6 { get; init; }

    /// <summary>The source address a host socket towards <paramref name="destination"/> binds to; null to leave it to the host's routing.</summary>
    public IPAddress? OutboundSourceFor(IPAddress destination) =>
        IPAddress.IsLoopback(destination) ? null
        : destination.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? OutboundAddress6
        : OutboundAddress;

    /// <summary>Outbound destination rules (<c>--allow</c>, <c>--deny</c>).</summary>
    public OutboundPolicy Policy { get; init; } = new([], []);

    /// <summary>Host ports forwarded into the guest (<c>--forward</c>).</summary>
    public IReadOnlyList<HostForward> Forwards { get; init; } = [];

    /// <summary>TCP connections open at once (each holds two bounded buffers).</summary>
    public int MaxTcpConnections { get; init; } = 1024;

    /// <summary>TCP connections waiting for the host connect or the guest's final ACK (SYN flood bound).</summary>
    public int MaxHalfOpen { get; init; } = 256;

    /// <summary>
    /// Bytes buffered per TCP connection per direction (the advertised window's ceiling). Null
    /// sizes it from the MTU: 16 full segments, at least 256 KiB and at most 1 MiB, so a 65520
    /// MTU link still has many segments in flight.
    /// </summary>
    public int? TcpBufferBytes { get; init; }

    /// <summary>The buffer size in effect: <see cref="TcpBufferBytes"/>, or the one sized from the MTU.</summary>
    public int EffectiveTcpBufferBytes => TcpBufferBytes ?? Math.Clamp(16 * (Mtu - 40), 256 * 1024, 1024 * 1024);

    /// <summary>UDP flows open at once.</summary>
    public int MaxUdpFlows { get; init; } = 512;

    /// <summary>A UDP flow with no traffic for this long is closed.</summary>
    public TimeSpan UdpIdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>A DNS flow with no traffic for this long is closed.</summary>
    public TimeSpan DnsIdleTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a closed TCP connection answers retransmitted FINs (TIME-WAIT).</summary>
    public TimeSpan TimeWait { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Virtual service addresses in the guest network (the SPICE tunnel's); null when there are none.</summary>
    public IVirtualServices? VirtualServices { get; init; }

    /// <summary>The folder the read-only TFTP server serves on the gateway address (<c>--tftp</c>, QEMU's <c>tftp=</c>); null for no TFTP.</summary>
    public string? TftpRoot { get; init; }

    /// <summary>The boot file DHCP names (option 67 and BOOTP <c>file</c>; <c>--bootfile</c>, QEMU's <c>bootfile=</c>); null for none.</summary>
    public string? BootFile { get; init; }

    /// <summary>DNS search domains for DHCP option 119 (<c>--dns-search</c>, libslirp's <c>dnssearch=</c>).</summary>
    public IReadOnlyList<string> DnsSearch { get; init; } = [];

    /// <summary>The domain name for DHCP option 15 (<c>--domain</c>, libslirp's <c>domainname=</c>); null for none.</summary>
    public string? DomainName { get; init; }

    /// <summary>The host name for DHCP option 12 (<c>--hostname</c>, QEMU's <c>hostname=</c>); null for none.</summary>
    public string? Hostname { get; init; }

    /// <summary>
    /// Isolates the guest (<c>--restrict</c>, QEMU's <c>restrict=on</c>): it reaches only the gateway's
    /// own services (ARP, DHCP, TFTP, ICMP echo to the gateway) and the configured forwards; every
    /// other destination is refused and counted as <see cref="StackDrop.Restricted"/>.
    /// </summary>
    public bool Restrict { get; init; }

    /// <summary>Guest forwards (<c>--guestfwd</c>, QEMU's <c>guestfwd=</c>).</summary>
    public IReadOnlyList<GuestForward> GuestForwards { get; init; } = [];

    /// <summary>TFTP transfers served at once.</summary>
    public int MaxTftpTransfers { get; init; } = 16;

    /// <summary>Checks the addresses against each other; throws <see cref="FormatException"/> with the reason.</summary>
    public void Validate()
    {
        foreach (var (name, address) in new[] { ("gateway", GatewayIp), ("DNS", DnsIp), ("DHCP start", DhcpStart) })
        {
            if (!Network.Contains(Ip.ToUInt(address)))
            {
                throw new FormatException($"the {name} address {address} is not in --net {Network}");
            }
        }

        if (Ipv6Enabled)
        {
            ValidateIpv6();
        }

        if (OutboundAddress is { } outbound && (outbound.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork || IPAddress.Any.Equals(outbound) || IPAddress.Broadcast.Equals(outbound) || outbound.GetAddressBytes()[0] >= 224))
        {
            throw new FormatException($"--outbound-addr {outbound}: must be a unicast IPv4 address");
        }

        if (OutboundAddress6 is { } outbound6 && (outbound6.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || IPAddress.IPv6Any.Equals(outbound6) || outbound6.IsIPv6Multicast || outbound6.IsIPv6LinkLocal || outbound6.IsIPv4MappedToIPv6))
        {
            throw new FormatException($"--outbound-addr6 {outbound6}: must be a unicast IPv6 address outside fe80::/10");
        }

        if (Mtu is < 576 or > 65520)
        {
            throw new FormatException($"--mtu {Mtu}: must be 576 to 65520");
        }

        if (DhcpPoolSize < 1 || !Network.Contains(Ip.ToUInt(DhcpStart) + (uint)DhcpPoolSize - 1))
        {
            throw new FormatException($"the DHCP pool from {DhcpStart} does not fit in {Network}");
        }

        if (BootFile is not null && TftpRoot is null)
        {
            throw new FormatException("--bootfile needs --tftp DIR");
        }

        if (TftpRoot is not null && !Directory.Exists(TftpRoot))
        {
            throw new FormatException($"--tftp '{TftpRoot}' is not a directory");
        }

        Dhcp.DhcpExtraOptions.Check(this);
        foreach (var forward in GuestForwards)
        {
            var address = Ip.ToUInt(forward.Address);
            var pool = Ip.ToUInt(DhcpStart);
            if (!Network.Contains(address) || address == Network.Network || address == Network.Broadcast || address == Ip.ToUInt(DnsIp)
                || (address >= pool && address < pool + (uint)DhcpPoolSize))
            {
                throw new FormatException($"--guestfwd {forward}: {forward.Address} must be an address of --net {Network} other than the DNS address and the DHCP pool");
            }
        }
    }

    private void ValidateIpv6()
    {
        if (Network6.IsIpv4 || Network6.PrefixLength != 64)
        {
            throw new FormatException($"--net6 {Network6}: must be an IPv6 /64 (SLAAC needs 64-bit interface identifiers)");
        }

        if (Network6.Network.IsIpv6Multicast || Network6.Network.IsIpv6LinkLocal)
        {
            throw new FormatException($"--net6 {Network6}: must be a unicast prefix outside fe80::/10");
        }

        foreach (var (name, address) in new[] { ("IPv6 gateway", GatewayIp6), ("IPv6 DNS", DnsIp6) })
        {
            if (address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || !Network6.Contains(IpAddr.FromAddress(address)))
            {
                throw new FormatException($"the {name} address {address} is not in --net6 {Network6}");
            }
        }

        if (GatewayIp6.Equals(DnsIp6))
        {
            throw new FormatException($"the IPv6 gateway and DNS addresses must differ ({GatewayIp6})");
        }
    }
}
