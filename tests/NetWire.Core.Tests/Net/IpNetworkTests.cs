using System.Net;
using NetWire.Core.Net;

namespace NetWire.Core.Tests.Net;

/// <summary>Networks of either family and the IPv6 address kinds the gateway tells apart.</summary>
public sealed class IpNetworkTests
{
    private static IpAddr A(string text) => IpAddr.FromAddress(IPAddress.Parse(text));

    [Theory]
    [InlineData("10.0.0.0/8", "10.255.1.2", true)]
    [InlineData("10.0.0.0/8", "11.0.0.1", false)]
    [InlineData("0.0.0.0/0", "203.0.113.9", true)]
    [InlineData("0.0.0.0/0", "2001:db8::1", false)]
    [InlineData("10.0.2.15", "10.0.2.15", true)]
    [InlineData("10.0.2.15/32", "10.0.2.16", false)]
    [InlineData("fd00::/64", "fd00::5054:ff:fe12:3456", true)]
    [InlineData("fd00::/64", "fd00:0:0:1::1", false)]
    [InlineData("2001:db8::/32", "2001:db8:ffff::1", true)]
    [InlineData("2001:db8::/33", "2001:db8:8000::1", false)]
    [InlineData("::/0", "2001:db8::1", true)]
    [InlineData("::/0", "10.0.0.1", false)]
    [InlineData("::1", "::1", true)]
    [InlineData("fd00::2/127", "fd00::3", true)]
    [InlineData("fd00::2/128", "fd00::3", false)]
    public void Contains_MatchesOnlyItsFamilyAndPrefix(string network, string address, bool expected) =>
        Assert.Equal(expected, IpNetwork.Parse(network).Contains(A(address)));

    [Fact]
    public void Parse_ClearsHostBits_AndPrints()
    {
        Assert.Equal("10.0.0.0/8", IpNetwork.Parse("10.1.2.3/8").ToString());
        Assert.Equal("fd00::/64", IpNetwork.Parse("fd00::1234/64").ToString());
        Assert.Equal(A("fd00::"), IpNetwork.Parse("fd00::1234/64").Network);
        Assert.False(IpNetwork.Parse("fd00::/64").IsIpv4);
        Assert.True(IpNetwork.Parse("10.0.0.0/8").IsIpv4);
    }

    [Theory]
    [InlineData("10.0.0.0/33")]
    [InlineData("fd00::/129")]
    [InlineData("fd00::/-1")]
    [InlineData("10.0.0/8")]
    [InlineData("fe80::1%2/64")]
    [InlineData("")]
    public void Parse_RefusesWhatIsNotANetwork(string text) =>
        Assert.Throws<FormatException>(() => IpNetwork.Parse(text));

    [Fact]
    public void HostAt_PutsTheHostPartIntoThePrefix()
    {
        Assert.Equal(A("fd00::100"), IpNetwork.Parse("fd00::/64").HostAt(0x100));
        Assert.Equal(A("10.0.2.100"), IpNetwork.Parse("10.0.2.0/24").HostAt(100));
        Assert.Throws<ArgumentOutOfRangeException>(() => IpNetwork.Parse("10.0.2.0/24").HostAt(256));
    }

    [Fact]
    public void Ipv6Kinds_AreToldApart()
    {
        Assert.True(A("fe80::2").IsIpv6LinkLocal);
        Assert.True(A("febf::1").IsIpv6LinkLocal);
        Assert.False(A("fec0::1").IsIpv6LinkLocal);
        Assert.False(A("fd00::2").IsIpv6LinkLocal);
        Assert.True(A("ff02::1").IsIpv6Multicast);
        Assert.False(A("fd00::2").IsIpv6Multicast);
        Assert.True(A("::").IsIpv6Unspecified);
        Assert.False(A("0.0.0.0").IsIpv6Unspecified);
        Assert.Equal(A("ff02::1"), IpAddr.Ipv6AllNodes);
        Assert.Equal(A("::1"), IpAddr.Ipv6Loopback);
        Assert.Equal(A("ff02::1:ff12:3456"), A("fd00::5054:ff:fe12:3456").SolicitedNodeMulticast);
        Assert.True(A("ff02::1:ff00:2").IsSolicitedNodeMulticast);
        Assert.False(A("ff02::1:fe00:2").IsSolicitedNodeMulticast);
        Assert.Equal("33:33:ff:12:34:56", Core.Packets.MacAddress.Ipv6Multicast(A("ff02::1:ff12:3456")).ToString());
    }

    [Fact]
    public void AddressSet_KeepsTheFirstAndReplacesTheRestOldestFirst()
    {
        var set = new Ipv6AddressSet();
        Assert.True(set.First.IsIpv6Unspecified);
        Assert.True(set.Learn(A("fd00::1")));
        Assert.False(set.Learn(A("fd00::1")));
        for (var i = 2; i <= 6; i++)
        {
            Assert.True(set.Learn(A($"fd00::{i}")));
        }

        Assert.Equal(["fd00::1", "fd00::5", "fd00::6", "fd00::4"], set.ToList().Select(a => a.ToString()));
        set.SetFirst(A("fd00::100"));
        Assert.Equal(A("fd00::100"), set.First);
        set.SetFirst(A("fd00::6"));
        Assert.Equal(["fd00::6", "fd00::5", "fd00::100", "fd00::4"], set.ToList().Select(a => a.ToString()));
    }
}
