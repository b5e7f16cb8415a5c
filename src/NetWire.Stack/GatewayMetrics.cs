using System.Diagnostics.Metrics;
using NetWire.Core.Metrics;

namespace NetWire.Stack;

/// <summary>
/// The gateway's figures on the <c>NetWire</c> meter, read from <see cref="StackCounters"/> when
/// collected: TCP connections opened, refused and now, retransmitted segments, UDP flows, DHCP
/// leases, TFTP transfers, and drops by reason (docs/gateway.md).
/// </summary>
internal sealed class GatewayMetrics : IDisposable
{
    private static readonly StackDrop[] s_reasons = Enum.GetValues<StackDrop>();

    private readonly Meter _meter = new(WireMetrics.MeterName);

    public GatewayMetrics(GatewayEnd end)
    {
        var counters = end.StackCounters;
        var tag = new KeyValuePair<string, object?>("end", end.Name);
        _meter.CreateObservableCounter("netwire.gateway.tcp.opened", () => new Measurement<long>(counters.TcpOpened, tag), "{connection}", "TCP connections relayed to a host socket");
        _meter.CreateObservableCounter("netwire.gateway.tcp.refused", () => new Measurement<long>(counters.TcpRefused, tag), "{connection}", "TCP connections whose host connect failed (answered with RST)");
        _meter.CreateObservableCounter("netwire.gateway.tcp.retransmits", () => new Measurement<long>(counters.Retransmits, tag), "{segment}", "TCP segments sent to the guest again");
        _meter.CreateObservableGauge("netwire.gateway.tcp.connections", () => new Measurement<int>(end.TcpConnections, tag), "{connection}", "TCP connections in the table now (TIME-WAIT included)");
        _meter.CreateObservableCounter("netwire.gateway.udp.flows", () => new Measurement<long>(counters.UdpFlows, tag), "{flow}", "UDP flows opened");
        _meter.CreateObservableCounter("netwire.gateway.dhcp.leases", () => new Measurement<long>(counters.DhcpLeases, tag), "{lease}", "DHCP leases acknowledged");
        _meter.CreateObservableCounter("netwire.gateway.tftp.transfers", () => new Measurement<long>(counters.TftpTransfers, tag), "{transfer}", "TFTP read transfers started");
        _meter.CreateObservableCounter("netwire.gateway.drops", () => Drops(counters, tag), "{packet}", "Packets the gateway dropped or refused, by reason");
    }

    public void Dispose() => _meter.Dispose();

    private static Measurement<long>[] Drops(StackCounters counters, KeyValuePair<string, object?> tag)
    {
        var list = new Measurement<long>[s_reasons.Length];
        for (var i = 0; i < s_reasons.Length; i++)
        {
            list[i] = new(counters.Drops(s_reasons[i]), tag, new KeyValuePair<string, object?>("reason", StackCounters.Name(s_reasons[i])));
        }

        return list;
    }
}
