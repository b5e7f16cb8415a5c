using System.Net;
using System.Net.Sockets;

namespace NetWire.Devices.Tests;

public sealed class WireSpecTests
{
    [Fact]
    public void StreamUnix_ListenAndConnect()
    {
        var listen = WireSpec.Parse("stream:unix:/run/x.sock", WireSide.Guest);
        Assert.Equal("stream", listen.Kind);
        Assert.Equal("/run/x.sock", ((UnixDomainSocketEndPoint)listen.EndPoint!).ToString());
        Assert.False(listen.Connect);
        Assert.True(WireSpec.Parse("stream:unix:/run/x.sock,connect", WireSide.Guest).Connect);
    }

    [Fact]
    public void StreamTcp_AndDgram()
    {
        var tcp = WireSpec.Parse("stream:tcp:127.0.0.1:5555,connect", WireSide.Guest);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5555), tcp.EndPoint);
        Assert.True(tcp.Connect);

        var udp = WireSpec.Parse("dgram:udp:127.0.0.1:4000=127.0.0.1:4001", WireSide.Guest);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 4000), udp.EndPoint);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 4001), udp.Remote);

        var unix = WireSpec.Parse("dgram:unix:/tmp/a=/tmp/b", WireSide.Guest);
        Assert.Equal("/tmp/b", unix.Remote!.ToString());

        var v6 = WireSpec.Parse("stream:tcp:[::1]:80", WireSide.Guest);
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 80), v6.EndPoint);
    }

    [Fact]
    public void HostSpecs()
    {
        Assert.Equal("tap0", WireSpec.Parse("tap:tap0", WireSide.Host).Interface);
        Assert.Equal("tap0", WireSpec.Parse("tap:tap0", WireSide.Guest).Interface);
        var pcap = WireSpec.Parse("pcap:veth0,filter=not arp and udp port 53", WireSide.Host);
        Assert.Equal("veth0", pcap.Interface);
        Assert.Equal("not arp and udp port 53", pcap.Filter);
    }

    [Theory]
    [InlineData("stream", WireSide.Guest)]
    [InlineData("stream:unix:", WireSide.Guest)]
    [InlineData("stream:udp:1.2.3.4:5", WireSide.Guest)]
    [InlineData("stream:tcp:127.0.0.1:70000", WireSide.Guest)]
    [InlineData("stream:tcp:nohost:80", WireSide.Guest)]
    [InlineData("dgram:udp:127.0.0.1:1", WireSide.Guest)]
    [InlineData("dgram:unix:=/b", WireSide.Guest)]
    [InlineData("tap:", WireSide.Host)]
    [InlineData("tap:averyveryverylongname", WireSide.Host)]
    [InlineData("tap:", WireSide.Guest)]
    [InlineData("stream:unix:/x", WireSide.Host)]
    [InlineData("pcap:eth0,filter=", WireSide.Host)]
    [InlineData("bogus:thing", WireSide.Host)]
    public void BadSpecs_FailWithTheValidForms(string text, WireSide side)
    {
        var ex = Assert.Throws<FormatException>(() => WireSpec.Parse(text, side));
        Assert.Contains(text, ex.Message, StringComparison.Ordinal);
        Assert.Contains(side == WireSide.Guest ? WireSpec.GuestForms : WireSpec.HostForms, ex.Message, StringComparison.Ordinal);
    }
}
