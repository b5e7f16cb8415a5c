using System.Text.Json.Nodes;
using NetWire.Control.Qmp;
using NetWire.Core.Wire;

namespace NetWire.Control.Commands;

/// <summary><c>query-wire</c>: the counters of every wire end the appliance runs (none yet in <c>netwire serve</c>).</summary>
internal static class WireCommands
{
    public static void Add(QmpCommandTable table, Func<IReadOnlyList<WireEnd>> ends) =>
        table.Add("query-wire", [], _ => QueryWire(ends()));

    private static JsonObject QueryWire(IReadOnlyList<WireEnd> ends)
    {
        var list = new JsonArray();
        foreach (var end in ends)
        {
            end.RefreshCounters();
            var counters = end.Counters;
            var drops = new JsonObject();
            foreach (var reason in Enum.GetValues<DropReason>())
            {
                drops[reason.ToString()] = counters.Drops(reason);
            }

            var guestIpv6 = new JsonArray();
            foreach (var address in end.GuestIpv6)
            {
                guestIpv6.Add(address.ToString());
            }

            list.Add(new JsonObject
            {
                ["name"] = end.Name,
                ["description"] = end.Description,
                ["guest-ip"] = end.GuestIp?.ToString(),
                ["guest-ip6"] = guestIpv6,
                ["rx-frames"] = counters.RxFrames,
                ["rx-bytes"] = counters.RxBytes,
                ["tx-frames"] = counters.TxFrames,
                ["tx-bytes"] = counters.TxBytes,
                ["connections"] = counters.Connections,
                ["queued-frames"] = end.QueuedFrames,
                ["drops"] = drops,
            });
        }

        return new JsonObject { ["ends"] = list };
    }
}
