namespace NetWire.Stack.Nat;

/// <summary>The expiry and shutdown shared by the gateway's tables of <see cref="DatagramFlow"/>s (UDP flows, relayed pings).</summary>
internal static class DatagramFlowTable
{
    /// <summary>
    /// Removes and closes the flows that closed themselves or saw no traffic for longer than
    /// their <paramref name="idleMs"/>. Caller holds the gateway lock; <paramref name="scratch"/> is left empty.
    /// </summary>
    public static void ExpireIdle<TKey, TFlow>(Dictionary<TKey, TFlow> flows, List<TKey> scratch, long nowMs, Func<TFlow, long> idleMs)
        where TKey : notnull
        where TFlow : DatagramFlow
    {
        foreach (var (key, flow) in flows)
        {
            if (flow.IsClosed || nowMs - flow.LastUsedMs > idleMs(flow))
            {
                scratch.Add(key);
            }
        }

        foreach (var key in scratch)
        {
            flows.Remove(key, out var flow);
            flow?.Close();
        }

        scratch.Clear();
    }

    /// <summary>Closes every flow and empties the table. Caller holds the gateway lock.</summary>
    public static void CloseAll<TKey, TFlow>(Dictionary<TKey, TFlow> flows)
        where TKey : notnull
        where TFlow : DatagramFlow
    {
        foreach (var flow in flows.Values)
        {
            flow.Close();
        }

        flows.Clear();
    }
}
