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

    public Option<string?> DnsForward { get; } = new("--dns-forward") { Description = "Resolver DNS queries are sent to (default: first nameserver in /etc/resolv.conf)", HelpName = "IP[:PORT]" };

    public Option<string> DhcpStart { get; } = new("--dhcp-start") { Description = "First DHCP address (16 leases)", DefaultValueFactory = _ => "10.0.2.15", HelpName = "IP" };

    public Option<int> Mtu { get; } = new("--mtu") { Description = "Link MTU (576-65520): DHCP option, TCP MSS, and the namespace TAP for 'run'", DefaultValueFactory = _ => 1500, HelpName = "N" };

    public Option<bool> AllowHostLoopback { get; } = new("--allow-host-loopback") { Description = "Let the guest reach the host's 127.0.0.1 at the gateway address (off by default)" };

    public Option<string[]> Forward { get; } = new("--forward") { Description = $"Forward a host port to the guest: {HostForward.Forms}", HelpName = "SPEC", AllowMultipleArgumentsPerToken = false };

    public Option<string[]> Allow { get; } = new("--allow") { Description = "Only these destination networks may be reached (repeatable; default: all)", HelpName = "CIDR" };

    public Option<string[]> Deny { get; } = new("--deny") { Description = "These destination networks may not be reached (repeatable)", HelpName = "CIDR" };

    public Option<string?> Tftp { get; } = new("--tftp") { Description = "Serve this folder read-only over TFTP on the gateway address (QEMU's tftp=)", HelpName = "DIR" };

    public Option<string?> BootFile { get; } = new("--bootfile") { Description = "Boot file named in DHCP (option 67, BOOTP file) for network boot, served from --tftp (QEMU's bootfile=)", HelpName = "NAME" };

    public Option<string[]> DnsSearch { get; } = new("--dns-search") { Description = "DNS search domain given by DHCP (option 119; repeatable)", HelpName = "DOMAIN" };

    public Option<string?> Domain { get; } = new("--domain") { Description = "Domain name given by DHCP (option 15)", HelpName = "NAME" };

    public Option<string?> Hostname { get; } = new("--hostname") { Description = "Host name given by DHCP (option 12)", HelpName = "NAME" };

    public Option<bool> Restrict { get; } = new("--restrict") { Description = "Isolate the guest (QEMU's restrict=on): only the gateway's own services (DHCP, TFTP, ping to the gateway) and the forwards" };

    public Option<string[]> GuestFwd { get; } = new("--guestfwd") { Description = $"Forward guest connections to ADDR:PORT to a host socket or a command: {GuestForward.Forms}", HelpName = "SPEC", AllowMultipleArgumentsPerToken = false };

    public IEnumerable<Option> All => [Net, GatewayIp, Dns, DnsForward, DhcpStart, Mtu, AllowHostLoopback, Forward, Allow, Deny, Restrict, GuestFwd, Tftp, BootFile, DnsSearch, Domain, Hostname];

    /// <summary>Builds and validates the options; throws <see cref="FormatException"/> with the reason.</summary>
    public GatewayOptions Build(ParseResult parse)
    {
        var options = new GatewayOptions
        {
            Network = Ipv4Cidr.Parse(parse.GetValue(Net)!),
            GatewayIp = ParseIp(parse.GetValue(GatewayIp)!, "--gateway-ip"),
            DnsIp = ParseIp(parse.GetValue(Dns)!, "--dns"),
            DhcpStart = ParseIp(parse.GetValue(DhcpStart)!, "--dhcp-start"),
            Mtu = parse.GetValue(Mtu),
            AllowHostLoopback = parse.GetValue(AllowHostLoopback),
            DnsUpstream = parse.GetValue(DnsForward) is { } upstream ? ParseEndPoint(upstream) : null,
            Forwards = [.. (parse.GetValue(Forward) ?? []).Select(HostForward.Parse)],
            Policy = new OutboundPolicy([.. (parse.GetValue(Allow) ?? []).Select(Ipv4Cidr.Parse)], [.. (parse.GetValue(Deny) ?? []).Select(Ipv4Cidr.Parse)]),
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

    private static IPEndPoint ParseEndPoint(string text)
    {
        if (IPEndPoint.TryParse(text, out var endPoint) && endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return endPoint.Port == 0 ? new IPEndPoint(endPoint.Address, 53) : endPoint;
        }

        throw new FormatException($"--dns-forward '{text}' is not IP[:PORT]");
    }
}
