using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>The DHCP options beyond the address plan: host and domain name, search list, and network boot.</summary>
public sealed class DhcpExtraOptionsTests
{
    [Fact]
    public void Offer_CarriesHostDomainSearchAndBootOptions_AndTheBootpFields()
    {
        var root = Directory.CreateTempSubdirectory("nwdhcp-").FullName;
        try
        {
            var options = new GatewayOptions
            {
                Hostname = "guest1",
                DomainName = "example.test",
                DnsSearch = ["example.test", "lab.example.test."],
                TftpRoot = root,
                BootFile = "boot.ipxe",
            };
            var offer = Offer(options);
            Assert.Equal("guest1", Encoding.ASCII.GetString(offer.Options[DhcpOptionCode.HostName]));
            Assert.Equal("example.test", Encoding.ASCII.GetString(offer.Options[DhcpOptionCode.DomainName]));
            Assert.Equal("10.0.2.2", Encoding.ASCII.GetString(offer.Options[DhcpOptionCode.TftpServerName]));
            Assert.Equal("boot.ipxe", Encoding.ASCII.GetString(offer.Options[DhcpOptionCode.BootFileName]));

            // RFC 3397 with no compression: each name as labels, the root's zero length last.
            byte[] search = [7, .. "example"u8, 4, .. "test"u8, 0, 3, .. "lab"u8, 7, .. "example"u8, 4, .. "test"u8, 0];
            Assert.Equal(search, offer.Options[DhcpOptionCode.DomainSearch]);
            Assert.Equal(GatewayIp, offer.Header.ServerAddress);
            Assert.Equal("boot.ipxe", Encoding.ASCII.GetString(offer.BootFile).TrimEnd('\0'));
        }
        finally
        {
            Directory.Delete(root);
        }
    }

    [Fact]
    public void WithoutThem_TheOfferHasNone_AndNoServerAddress()
    {
        var offer = Offer(new GatewayOptions());
        foreach (var code in new[] { DhcpOptionCode.HostName, DhcpOptionCode.DomainName, DhcpOptionCode.DomainSearch, DhcpOptionCode.TftpServerName, DhcpOptionCode.BootFileName })
        {
            Assert.False(offer.Options.ContainsKey(code), code.ToString());
        }

        Assert.Equal(0u, offer.Header.ServerAddress);
        Assert.All(offer.BootFile, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData("bad domain")]
    [InlineData("a..b")]
    [InlineData("")]
    public void BadNames_AreRefusedWithTheOption(string name)
    {
        var error = Assert.Throws<FormatException>(() => new GatewayOptions { DnsSearch = [name] }.Validate());
        Assert.Contains("--dns-search", error.Message, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => new GatewayOptions { BootFile = "x" }.Validate());
    }

    private static (DhcpHeader Header, Dictionary<DhcpOptionCode, byte[]> Options, byte[] BootFile) Offer(GatewayOptions options)
    {
        var receiver = new CollectingReceiver();
        var gateway = new Gateway(options, new FramePool(), new FakeTimeProvider(), NullLogger.Instance);
        gateway.Attach(receiver, new WireCounters(), CancellationToken.None);
        lock (gateway.Sync)
        {
            gateway.OnGuestFrame(BuildUdp(0, 68, 0xffffffff, 67, GatewayProtocolTests.Bootp(DhcpMessageType.Discover, 0), dstMac: MacAddress.Broadcast));
        }

        Assert.True(receiver.Frames.TryDequeue(out var frame));
        var (header, parsed) = GatewayProtocolTests.Dhcp(frame);
        var (_, _, _, udp) = ParseIpv4(frame);
        return (header, parsed, udp.AsSpan(UdpPacket.HeaderLength + DhcpPacket.BootFileOffset, 128).ToArray());
    }
}
