using System.Net;
using NetWire.Core.Net;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Tests;

/// <summary>The forward specs and the IPv6 address plan: what is accepted, and the reason for what is not.</summary>
public sealed class GatewayOptionsTests
{
    [Theory]
    [InlineData("tcp:8080:80", Transport.Tcp, "127.0.0.1:8080", 80)]
    [InlineData("udp:0.0.0.0:5353:53", Transport.Udp, "0.0.0.0:5353", 53)]
    [InlineData("tcp:[::1]:8080:80", Transport.Tcp, "[::1]:8080", 80)]
    [InlineData("udp:[::]:5353:53", Transport.Udp, "[::]:5353", 53)]
    [InlineData("tcp:[fd12::1]:0:22", Transport.Tcp, "[fd12::1]:0", 22)]
    public void Forward_Parses(string text, Transport transport, string listen, ushort guestPort)
    {
        var forward = HostForward.Parse(text);
        Assert.Equal(transport, forward.Transport);
        Assert.Equal(IPEndPoint.Parse(listen), forward.Listen);
        Assert.Equal(guestPort, forward.GuestPort);
    }

    [Theory]
    [InlineData("tcp:::1:8080:80")]
    [InlineData("tcp:[::1]8080:80")]
    [InlineData("tcp:[10.0.0.1]:8080:80")]
    [InlineData("tcp:[::1]:8080")]
    [InlineData("tcp:[::1]:8080:80:1")]
    [InlineData("sctp:8080:80")]
    [InlineData("tcp:8080:0")]
    [InlineData("tcp:host:8080:80")]
    public void Forward_RefusesWhatItCannotRead(string text) =>
        Assert.Throws<FormatException>(() => HostForward.Parse(text));

    [Fact]
    public void DefaultIpv6Plan_IsSlirp4netns()
    {
        var options = new GatewayOptions();
        options.Validate();
        Assert.True(options.Ipv6Enabled);
        Assert.Equal("fd00::/64", options.Network6.ToString());
        Assert.Equal(IPAddress.Parse("fd00::2"), options.GatewayIp6);
        Assert.Equal(IPAddress.Parse("fd00::3"), options.DnsIp6);
    }

    [Theory]
    [InlineData("fd00::/48", "fd00::2", "fd00::3", "an IPv6 /64")]
    [InlineData("10.0.0.0/8", "fd00::2", "fd00::3", "an IPv6 /64")]
    [InlineData("fe80::/64", "fe80::2", "fe80::3", "outside fe80::/10")]
    [InlineData("fd00::/64", "fd01::2", "fd00::3", "not in --net6")]
    [InlineData("fd00::/64", "fd00::2", "fd00::2", "must differ")]
    public void BadIpv6Plan_IsRefusedWithTheReason(string network, string gateway, string dns, string reason)
    {
        var options = new GatewayOptions { Network6 = IpNetwork.Parse(network), GatewayIp6 = IPAddress.Parse(gateway), DnsIp6 = IPAddress.Parse(dns) };
        Assert.Contains(reason, Assert.Throws<FormatException>(options.Validate).Message, StringComparison.Ordinal);
        (options with { Ipv6Enabled = false }).Validate();
    }

    [Fact]
    public void Policy_TakesNetworksOfEitherFamily()
    {
        var policy = new OutboundPolicy([IpNetwork.Parse("2001:db8::/32")], [IpNetwork.Parse("2001:db8:bad::/48"), IpNetwork.Parse("10.0.0.0/8")]);
        Assert.True(policy.Permits(IpAddr.FromAddress(IPAddress.Parse("2001:db8::1"))));
        Assert.False(policy.Permits(IpAddr.FromAddress(IPAddress.Parse("2001:db8:bad::1"))));
        Assert.False(policy.Permits(IpAddr.FromAddress(IPAddress.Parse("2001:db9::1"))));
        Assert.False(policy.Permits(IpAddr.FromAddress(IPAddress.Parse("192.0.2.1"))));
        var denyOnly = new OutboundPolicy([], [IpNetwork.Parse("::/0")]);
        Assert.True(denyOnly.Permits(IpAddr.FromAddress(IPAddress.Parse("192.0.2.1"))));
        Assert.False(denyOnly.Permits(IpAddr.FromAddress(IPAddress.Parse("2001:db8::1"))));
    }
}
