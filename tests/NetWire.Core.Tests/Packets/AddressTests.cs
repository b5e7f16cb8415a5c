using System.Net;
using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Core.Tests.Packets;

/// <summary>The address values: IPv4 and IPv6 in one <see cref="IpAddr"/>, MAC addresses.</summary>
public sealed class AddressTests
{
    [Fact]
    public void Ipv4_IsHeldMapped_AndComparesAsItself()
    {
        var address = IpAddr.FromIpv4(0x0A000202);
        Assert.True(address.IsIpv4);
        Assert.Equal(0x0A000202u, address.Ipv4);
        Assert.Equal("10.0.2.2", address.ToString());
        Assert.Equal(IPAddress.Parse("10.0.2.2"), address.ToIPAddress());
        Assert.Equal(address, IpAddr.FromAddress(IPAddress.Parse("10.0.2.2")));
        Assert.Equal(address, IpAddr.FromAddress(IPAddress.Parse("::ffff:10.0.2.2")));
        Assert.NotEqual(address, IpAddr.FromIpv4(0x0A000203));
        Assert.Equal(address.GetHashCode(), IpAddr.FromIpv4(0x0A000202).GetHashCode());
    }

    [Fact]
    public void Ipv6_KeepsAllSixteenBytes()
    {
        var text = "fd00:1:2:3:4:5:6:7";
        var address = IpAddr.FromAddress(IPAddress.Parse(text));
        Assert.False(address.IsIpv4);
        Assert.Equal(text, address.ToString());
        var bytes = new byte[16];
        Assert.Equal(16, address.WriteTo(bytes));
        Assert.Equal(IPAddress.Parse(text).GetAddressBytes(), bytes);
        Assert.Equal(address, IpAddr.FromIpv6(bytes));
        Assert.NotEqual(address, IpAddr.FromAddress(IPAddress.Parse("fd00:1:2:3:4:5:6:8")));
        Assert.NotEqual(IpAddr.FromIpv4(0), IpAddr.FromAddress(IPAddress.IPv6Any));
    }

    [Fact]
    public void Mac_ReadsWritesAndPrints()
    {
        byte[] bytes = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0xff];
        var mac = MacAddress.Read(bytes);
        Assert.Equal(new MacAddress(0x52550a000202), mac);
        Assert.Equal("52:55:0a:00:02:02", mac.ToString());
        Assert.False(mac.IsMulticast);
        var written = new byte[6];
        mac.WriteTo(written);
        Assert.Equal(bytes[..6], written);
        Assert.True(MacAddress.Broadcast.IsBroadcast);
        Assert.True(MacAddress.Broadcast.IsMulticast);
        Assert.True(new MacAddress(0x01005e000001).IsMulticast);
        Assert.Equal("ff:ff:ff:ff:ff:ff", MacAddress.Broadcast.ToString());
    }
}
