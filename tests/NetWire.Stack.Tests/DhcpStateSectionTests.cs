using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.State;
using NetWire.Stack.Dhcp;

namespace NetWire.Stack.Tests;

/// <summary>The gateway's <c>gateway.dhcp</c> section: same plan adopted, another plan or a hostile lease refused.</summary>
public sealed class DhcpStateSectionTests
{
    [Fact]
    public void SamePlan_IsAdopted_DifferentPlan_IsRefusedNamingBoth()
    {
        var source = End(new GatewayOptions());
        var bytes = StateStream.Build([new DhcpStateSection(() => source)]);

        var same = new StateRegistry();
        same.Register(new DhcpStateSection(() => End(new GatewayOptions())));
        Assert.Equal(["gateway.dhcp"], same.Adopt(StateStream.Parse(bytes)).Adopted);

        var other = new StateRegistry();
        other.Register(new DhcpStateSection(() => End(new GatewayOptions { Network = Core.Net.Ipv4Cidr.Parse("10.9.0.0/24"), GatewayIp = System.Net.IPAddress.Parse("10.9.0.2"), DnsIp = System.Net.IPAddress.Parse("10.9.0.3"), DhcpStart = System.Net.IPAddress.Parse("10.9.0.15") })));
        var ex = Assert.Throws<StateFormatException>(() => other.Adopt(StateStream.Parse(bytes)));
        Assert.Contains("10.0.2.0/24", ex.Message, StringComparison.Ordinal);
        Assert.Contains("10.9.0.0/24", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LeaseOutsideThePool_IsRefused()
    {
        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        foreach (var word in new uint[] { 0x0A000200 })
        {
            writer.WriteUInt32(word);
        }

        writer.WriteByte(24);
        writer.WriteUInt32(0x0A000202);
        writer.WriteUInt32(0x0A000203);
        writer.WriteUInt32(0x0A00020F);
        writer.WriteUInt32(16);
        writer.WriteUInt32(1);
        writer.WriteUInt32(16);
        writer.WriteInt64(0x525400123456);
        writer.WriteInt64(1000);
        var section = new DhcpStateSection(() => End(new GatewayOptions()));
        var ex = Assert.Throws<StateFormatException>(() => section.Read(new StateSectionReader("gateway.dhcp", writer.Written.ToArray())));
        Assert.Contains("does not fit the pool", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoGateway_WritesAnEmptySection_ThatAGatewayAccepts()
    {
        var bytes = StateStream.Build([new DhcpStateSection(static () => null)]);
        var registry = new StateRegistry();
        registry.Register(new DhcpStateSection(() => End(new GatewayOptions())));
        Assert.Equal(["gateway.dhcp"], registry.Adopt(StateStream.Parse(bytes)).Adopted);
    }

    private static GatewayEnd End(GatewayOptions options) =>
        new("host", options, FramePool.Shared, 64, TimeProvider.System, NullLogger.Instance);
}
