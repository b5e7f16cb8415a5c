using Microsoft.Extensions.Logging;
using NetWire.Core.State;
using NetWire.Core.Wire;

namespace NetWire.Appliance;

/// <summary>
/// State section <c>wire</c>: what the source's wire was (its ends' descriptions) and its
/// counters, which the target's ends of the same name continue, so totals survive a migration.
/// </summary>
/// <remarks>
/// Layout: u32 n ends, then per end {string name, string description, i64 rx frames, i64 rx
/// bytes, i64 tx frames, i64 tx bytes, i64 connections, u32 m, m × {string reason, i64 count}}.
/// Drop reasons travel by name, so a reason unknown to the target is skipped, not misfiled.
/// The target keeps its own wire configuration (its command line); an end the target does not
/// have (<c>--guest none</c>) leaves its counters behind, which the log says.
/// </remarks>
internal sealed class WireStateSection(Func<IReadOnlyList<WireEnd>> ends, ILogger logger) : IStateSection
{
    private const int MaxEnds = 8;
    private const int MaxText = 1024;
    private static readonly DropReason[] s_reasons = Enum.GetValues<DropReason>();

    public string Name => "wire";

    public void Write(StateSectionWriter writer)
    {
        var list = ends();
        writer.WriteUInt32((uint)list.Count);
        foreach (var end in list)
        {
            end.RefreshCounters();
            var c = end.Counters;
            writer.WriteString(end.Name);
            writer.WriteString(end.Description);
            writer.WriteInt64(c.RxFrames);
            writer.WriteInt64(c.RxBytes);
            writer.WriteInt64(c.TxFrames);
            writer.WriteInt64(c.TxBytes);
            writer.WriteInt64(c.Connections);
            writer.WriteUInt32((uint)s_reasons.Length);
            foreach (var reason in s_reasons)
            {
                writer.WriteString(reason.ToString());
                writer.WriteInt64(c.Drops(reason));
            }
        }
    }

    public Action Read(StateSectionReader reader)
    {
        var count = reader.ReadCount(MaxEnds, 8);
        var carried = new List<Carried>(count);
        for (var i = 0; i < count; i++)
        {
            var name = reader.ReadString(MaxText) ?? throw reader.Error($"end {i} has no name");
            var description = reader.ReadString(MaxText) ?? string.Empty;
            var totals = new long[5];
            for (var t = 0; t < totals.Length; t++)
            {
                totals[t] = reader.ReadInt64();
                if (totals[t] < 0)
                {
                    throw reader.Error($"end '{name}' has a negative counter");
                }
            }

            var drops = new long[s_reasons.Length];
            var reasons = reader.ReadCount(64, 9);
            for (var r = 0; r < reasons; r++)
            {
                var reason = reader.ReadString(64) ?? throw reader.Error($"end '{name}' has a drop reason without a name");
                var value = reader.ReadInt64();
                if (value < 0)
                {
                    throw reader.Error($"end '{name}' has a negative count for drop reason '{reason}'");
                }

                if (Enum.TryParse<DropReason>(reason, ignoreCase: false, out var known) && Enum.IsDefined(known))
                {
                    drops[(int)known] = value;
                }
            }

            carried.Add(new Carried(name, description, totals, drops));
        }

        return () =>
        {
            var ours = ends();
            var continued = new List<(Carried End, bool Continued)>(carried.Count);
            foreach (var end in carried)
            {
                var target = ours.FirstOrDefault(e => e.Name == end.Name);
                target?.Counters.Continue(end.Totals[0], end.Totals[1], end.Totals[2], end.Totals[3], end.Totals[4], end.Drops);
                continued.Add((end, target is not null));
            }

            // Logged on another thread: the apply runs while the source waits with its flows locked.
            ThreadPool.UnsafeQueueUserWorkItem(static s => Log(s.Logger, s.Continued), (Logger: logger, Continued: continued), preferLocal: false);
        };
    }

    private static void Log(ILogger logger, List<(Carried End, bool Continued)> ends)
    {
        foreach (var (end, continued) in ends)
        {
            if (continued)
            {
                ApplianceLog.WireCountersContinued(logger, end.Name, end.Description, end.Totals[0], end.Totals[2]);
            }
            else
            {
                ApplianceLog.WireCountersLeft(logger, end.Name, end.Description);
            }
        }
    }

    private sealed record Carried(string Name, string Description, long[] Totals, long[] Drops);
}
