using System.CommandLine;
using System.Net;
using NetWire.Stack;
using NetWire.Core.Net;
using NetWire.Stack.Nat;

namespace NetWire.Cli.Commands;

/// <summary>The user-mode gateway's options, shared by <c>run</c>, <c>bridge --host gateway</c> and <c>serve</c>.</summary>
internal sealed class GatewayCliOptions
{
    public Option<string> Net { get; } = new("--net") { Description = "The guest network", DefaultValueFactory = _ => "10.0.2.0/24", HelpName = "CIDR" };

    public Option<string> GatewayIp { get; } = new("--gateway-ip") { Description = "The gateway's address (router; host loopback with --allow-host-loopback)", DefaultValueFactory = _ => "10.0.2.2", HelpName = "IP" };

    public Option<string> Dns { get; } = new("--dns") { Description = "The DNS address given to the guest; queries go to --dns-forward", DefaultValueFactory = _ => "10.0.2.3", HelpName = "IP" };

    public Option<string?> DnsForward { get; } = new("--dns-forward") { Description = "Resolver DNS queries are sent to, IPv4 or IPv6 (default: first nameserver in /etc/resolv.conf)", HelpName = "IP[:PORT]|[IPv6]:PORT" };

    public Option<bool> NoIpv6 { get; } = new("--no-ipv6") { Description = "No IPv6 on the guest's link (no router advertisements; IPv6 frames are dropped)" };

    public Option<string> Net6 { get; } = new("--net6") { Description = "The guest's IPv6 prefix, advertised for SLAAC (a /64)", DefaultValueFactory = _ => "fd00::/64", HelpName = "PREFIX/64" };

    public Option<string> GatewayIp6 { get; } = new("--gateway-ip6") { Description = "The gateway's IPv6 address (host ::1 with --allow-host-loopback); its link-local address is fe80::2", DefaultValueFactory = _ => "fd00::2", HelpName = "IPv6" };

    public Option<string> Dns6 { get; } = new("--dns6") { Description = "The IPv6 DNS address given to the guest (RDNSS, DHCPv6); queries go to --dns-forward", DefaultValueFactory = _ => "fd00::3", HelpName = "IPv6" };

    public Option<string> DhcpStart { get; } = new("--dhcp-start") { Description = "First DHCP address (16 leases)", DefaultValueFactory = _ => "10.0.2.15", HelpName = "IP" };

    public Option<int> Mtu { get; } = new("--mtu") { Description = "Link MTU (576-65520): DHCP option, TCP MSS, and the namespace TAP for 'run'", DefaultValueFactory = _ => 1500, HelpName = "N" };

    public Option<bool> AllowHostLoopback { get; } = new("--allow-host-loopback") { Description = "Let the guest reach the host's 127.0.0.1 at the gateway address, and ::1 at the IPv6 one (off by default)" };

    public Option<string?> OutboundAddr { get; } = new("--outbound-addr") { Description = "Source address of the gateway's IPv4 host sockets (guest connections, UDP, DNS, pings; not host loopback): an address of this host, or an interface for its first IPv4 address", HelpName = "IPv4|INTERFACE" };

    public Option<string?> OutboundAddr6 { get; } = new("--outbound-addr6") { Description = "Source address of the gateway's IPv6 host sockets (as --outbound-addr): an address of this host, or an interface for its first IPv6 address outside fe80::/10", HelpName = "IPv6|INTERFACE" };

    public Option<string[]> Forward { get; } = new("--forward") { Description = $"Forward a host port to the guest: {HostForward.Forms}", HelpName = "SPEC", AllowMultipleArgumentsPerToken = false };

    public Option<string[]> Allow { get; } = new("--allow") { Description = "Only these destination networks (IPv4 or IPv6) may be reached (repeatable; default: all)", HelpName = "CIDR" };

    public Option<string[]> Deny { get; } = new("--deny") { Description = "These destination networks (IPv4 or IPv6) may not be reached (repeatable)", HelpName = "CIDR" };

    public Option<string?> Tftp { get; } = new("--tftp") { Description = "Serve this folder read-only over TFTP on the gateway address (QEMU's tftp=)", HelpName = "DIR" };

    public Option<string?> BootFile { get; } = new("--bootfile") { Description = "Boot file named in DHCP (option 67, BOOTP file) for network boot, served from --tftp (QEMU's bootfile=)", HelpName = "NAME" };

    public Option<string[]> DnsSearch { get; } = new("--dns-search") { Description = "DNS search domain given by DHCP (option 119; repeatable)", HelpName = "DOMAIN" };

    public Option<string?> Domain { get; } = new("--domain") { Description = "Domain name given by DHCP (option 15)", HelpName = "NAME" };

    public Option<string?> Hostname { get; } = new("--hostname") { Description = "Host name given by DHCP (option 12)", HelpName = "NAME" };

    public Option<bool> Restrict { get; } = new("--restrict") { Description = "Isolate the guest (QEMU's restrict=on): only the gateway's own services (DHCP, TFTP, ping to the gateway) and the forwards" };

    public Option<string[]> GuestFwd { get; } = new("--guestfwd") { Description = $"Forward guest connections to ADDR:PORT to a host socket or a command: {GuestForward.Forms}", HelpName = "SPEC", AllowMultipleArgumentsPerToken = false };

    public IEnumerable<Option> All => [Net, GatewayIp, Dns, DnsForward, DhcpStart, Mtu, NoIpv6, Net6, GatewayIp6, Dns6, AllowHostLoopback, OutboundAddr, OutboundAddr6, Forward, Allow, Deny, Restrict, GuestFwd, Tftp, BootFile, DnsSearch, Domain, Hostname];

    /// <summary>Builds and validates the options; throws <see cref="FormatException"/> with the reason.</summary>
    public GatewayOptions Build(ParseResult parse)
    {
        var options = new GatewayOptions
        {
            Network = Ipv4Cidr.Parse(parse.GetValue(Net)!),
            GatewayIp = ParseIp(parse.GetValue(GatewayIp)!, "--gateway-ip"),
            DnsIp = ParseIp(parse.GetValue(Dns)!, "--dns"),
            Ipv6Enabled = !parse.GetValue(NoIpv6),
            Network6 = IpNetwork.Parse(parse.GetValue(Net6)!),
            GatewayIp6 = ParseIp6(parse.GetValue(GatewayIp6)!, "--gateway-ip6"),
            DnsIp6 = ParseIp6(parse.GetValue(Dns6)!, "--dns6"),
            DhcpStart = ParseIp(parse.GetValue(DhcpStart)!, "--dhcp-start"),
            Mtu = parse.GetValue(Mtu),
            AllowHostLoopback = parse.GetValue(AllowHostLoopback),
            OutboundAddress = parse.GetValue(OutboundAddr) is { } outbound ? OutboundAddressOption.Resolve(outbound, System.Net.Sockets.AddressFamily.InterNetwork, "--outbound-addr") : null,
            OutboundAddress6 = parse.GetValue(OutboundAddr6) is { } outbound6 ? OutboundAddressOption.Resolve(outbound6, System.Net.Sockets.AddressFamily.InterNetworkV6, "--outbound-addr6") : null,
            DnsUpstream = parse.GetValue(DnsForward) is { } upstream ? ParseEndPoint(upstream) : null,
            Forwards = [.. (parse.GetValue(Forward) ?? []).Select(HostForward.Parse)],
            Policy = new OutboundPolicy([.. (parse.GetValue(Allow) ?? []).Select(IpNetwork.Parse)], [.. (parse.GetValue(Deny) ?? []).Select(IpNetwork.Parse)]),
            Restrict = parse.GetValue(Restrict),
            GuestForwards = [.. (parse.GetValue(GuestFwd) ?? []).Select(GuestForward.Parse)],
            TftpRoot = parse.GetValue(Tftp) is { } tftp ? Path.GetFullPath(tftp) : null,
            BootFile = parse.GetValue(BootFile),
            DnsSearch = parse.GetValue(DnsSearch) ?? [],
            DomainName = parse.GetValue(Domain),
            Hostname = parse.GetValue(Hostname),
        };
        options.Validate();
        return options;
    }

    private static IPAddress ParseIp(string text, string option) =>
        IPAddress.TryParse(text, out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? address
            : throw new FormatException($"{option} '{text}' is not an IPv4 address");

    private static IPAddress ParseIp6(string text, string option) =>
        IPAddress.TryParse(text, out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
            ? address
            : throw new FormatException($"{option} '{text}' is not an IPv6 address");

    /// <summary>IPv4[:PORT], a bare IPv6 address, or [IPv6]:PORT; port 53 when none is given.</summary>
    private static IPEndPoint ParseEndPoint(string text)
    {
        if (IPEndPoint.TryParse(text, out var endPoint))
        {
            return endPoint.Port == 0 ? new IPEndPoint(endPoint.Address, 53) : endPoint;
        }

        throw new FormatException($"--dns-forward '{text}' is not IP[:PORT] or [IPv6]:PORT");
    }
}
