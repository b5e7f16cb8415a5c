using NetWire.Core.State;
using NetWire.Core.Net;

namespace NetWire.Stack.Dhcp;

/// <summary>
/// State section <c>gateway.dhcp</c>: the gateway's address plan and its DHCP leases, so a
/// guest keeps its address on the target.
/// </summary>
/// <remarks>
/// Layout: u32 network, u8 prefix length, u32 gateway, u32 DNS, u32 DHCP start, u32 pool
/// size (addresses as big-endian numbers), then u32 n and n × {u32 pool index, u64 MAC, i64 ms
/// left}. The target must run the same address plan; a different one is refused (the guest's
/// address would not fit it). Without a gateway (a device host end) the section is empty.
/// </remarks>
public sealed class DhcpStateSection : IStateSection
{
    private readonly Func<GatewayEnd?> _gateway;

    public DhcpStateSection(Func<GatewayEnd?> gateway) => _gateway = gateway;

    public string Name => "gateway.dhcp";

    public void Write(StateSectionWriter writer)
    {
        if (_gateway()?.Gateway is not { } gateway)
        {
            writer.WriteBool(false);
            return;
        }

        writer.WriteBool(true);
        WritePlan(writer, gateway.Options);
        List<(int Index, ulong Mac, long MillisecondsLeft)> leases;
        lock (gateway.Sync)
        {
            leases = gateway.Dhcp.ExportLeases();
        }

        writer.WriteUInt32((uint)leases.Count);
        foreach (var (index, mac, left) in leases)
        {
            writer.WriteUInt32((uint)index);
            writer.WriteInt64((long)mac);
            writer.WriteInt64(left);
        }
    }

    public Action Read(StateSectionReader reader)
    {
        if (!reader.ReadBool())
        {
            return static () => { };
        }

        var plan = (reader.ReadUInt32(), reader.ReadByte(), reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadUInt32());
        var count = reader.ReadCount(4096, 20);
        var leases = new List<(int, ulong, long)>(count);
        for (var i = 0; i < count; i++)
        {
            var index = reader.ReadUInt32();
            var mac = (ulong)reader.ReadInt64();
            var left = reader.ReadInt64();
            if (index >= plan.Item6 || mac > 0xFFFF_FFFF_FFFF || left is < 0 or > 366L * 24 * 3600 * 1000)
            {
                throw reader.Error($"lease {i} (index {index}, {left} ms left) does not fit the pool of {plan.Item6}");
            }

            leases.Add(((int)index, mac, left));
        }

        if (_gateway()?.Gateway is not { } gateway)
        {
            // This appliance has no gateway: the leases have nowhere to go.
            return static () => { };
        }

        var options = gateway.Options;
        var ours = (options.Network.Network, (byte)options.Network.PrefixLength, Ip.ToUInt(options.GatewayIp), Ip.ToUInt(options.DnsIp), Ip.ToUInt(options.DhcpStart), (uint)options.DhcpPoolSize);
        if (plan != ours)
        {
            throw reader.Error($"the source's address plan ({Ip.Format(plan.Item1)}/{plan.Item2}, gateway {Ip.Format(plan.Item3)}, DHCP {Ip.Format(plan.Item5)} x {plan.Item6}) differs from this gateway's ({options.Network}, gateway {options.GatewayIp}, DHCP {options.DhcpStart} x {options.DhcpPoolSize})");
        }

        return () =>
        {
            lock (gateway.Sync)
            {
                gateway.Dhcp.ImportLeases(leases);
            }
        };
    }

    private static void WritePlan(StateSectionWriter writer, GatewayOptions options)
    {
        writer.WriteUInt32(options.Network.Network);
        writer.WriteByte((byte)options.Network.PrefixLength);
        writer.WriteUInt32(Ip.ToUInt(options.GatewayIp));
        writer.WriteUInt32(Ip.ToUInt(options.DnsIp));
        writer.WriteUInt32(Ip.ToUInt(options.DhcpStart));
        writer.WriteUInt32((uint)options.DhcpPoolSize);
    }
}
