using System.Globalization;
using System.Text;

namespace NetWire.Bench;

/// <summary>Turns result lines into markdown tables: medians with ranges, and ratios against the raw loop of the same run.</summary>
internal static class Summary
{
    private static readonly string[] s_directions = ["g2h", "h2g"];

    public static string ToMarkdown(IEnumerable<string> lines)
    {
        var results = new List<BenchResult>();
        foreach (var line in lines)
        {
            if (line.TrimStart().StartsWith('{') && BenchResult.Parse(line) is { } result)
            {
                results.Add(result);
            }
        }

        var sizes = results.Select(r => r.Size).Distinct().Order().ToArray();
        var text = new StringBuilder();
        text.AppendLine("Frames per second, millions: median of the runs (min-max). Ratios are bridge or SharpPcap over the raw loop of the same run, median (min-max).");
        text.AppendLine();
        text.AppendLine("| direction | frame | raw loop | netwire bridge | bridge / raw | SharpPcap TunnelDevice | SharpPcap / raw | generator alone |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var direction in s_directions)
        {
            foreach (var size in sizes)
            {
                var raw = Select(results, direction, size, "raw");
                var bridge = Select(results, direction, size, "bridge");
                var sharp = Select(results, direction, size, "sharppcap");
                var generator = Select(results, direction, size, "generator");
                if (raw.Count + bridge.Count + sharp.Count + generator.Count == 0)
                {
                    continue;
                }

                text.AppendLine(CultureInfo.InvariantCulture, $"| {Describe(direction)} | {size} B | {Rate(raw)} | {Rate(bridge)} | {Ratio(bridge, raw)} | {Rate(sharp)} | {Ratio(sharp, raw)} | {Rate(generator)} |");
            }
        }

        text.AppendLine();
        text.AppendLine("Cost inside netwire over the same windows: managed bytes allocated per frame (from `gc_allocated_bytes` and the frame counters of two status-file readings), netwire CPU seconds per million frames, and drops; plus the bench process's own CPU.");
        text.AppendLine();
        text.AppendLine("| direction | frame | alloc B/frame, median (max) | frames between readings, median | netwire CPU s / M frames | bench CPU s / M frames | netwire drops | TAP queue drops |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var direction in s_directions)
        {
            foreach (var size in sizes)
            {
                var bridge = Select(results, direction, size, "bridge");
                if (bridge.Count == 0)
                {
                    continue;
                }

                var alloc = bridge.Where(r => r.AllocBytesPerFrame is not null).Select(r => r.AllocBytesPerFrame!.Value).ToList();
                var allocFrames = bridge.Where(r => r.AllocFrames is not null).Select(r => (double)r.AllocFrames!.Value).ToList();
                var cpu = bridge.Where(r => r.NetWireCpuPerMillion is not null).Select(r => r.NetWireCpuPerMillion!.Value).ToList();
                var benchCpu = bridge.Select(r => r.BenchCpuPerMillion).ToList();
                var drops = bridge.Sum(r => r.NetWireDrops ?? 0);
                var kernel = bridge.Sum(r => r.KernelDrops ?? 0);
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {Describe(direction)} | {size} B | {F(Median(alloc), "0.000")} ({F(Max(alloc), "0.000")}) | {F(Median(allocFrames), "N0")} | {Spread(cpu, "0.00")} | {Spread(benchCpu, "0.00")} | {drops} | {(direction == "h2g" ? kernel.ToString(CultureInfo.InvariantCulture) : "n/a")} |");
            }
        }

        if (results.Count > 0)
        {
            var busiest = results.MaxBy(r => r.OthersBusyCores)!;
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"Other processes on the machine during the windows: at most {busiest.OthersBusyCores:0.00} cores busy ({busiest.Scenario} {busiest.Direction} {busiest.Size} B run {busiest.Run}); median {Median(results.Select(r => r.OthersBusyCores).ToList()):0.00}.");
        }

        return text.ToString();
    }

    private static string Describe(string direction) => direction == "g2h" ? "guest -> host (socket -> TAP)" : "host -> guest (TAP -> socket)";

    private static List<BenchResult> Select(List<BenchResult> results, string direction, int size, string scenario) =>
        results.Where(r => r.Direction == direction && r.Size == size && r.Scenario == scenario).ToList();

    private static string Rate(List<BenchResult> runs) => runs.Count == 0 ? "-" : Spread(runs.Select(r => r.Fps / 1e6).ToList(), "0.000");

    private static string Ratio(List<BenchResult> runs, List<BenchResult> raw)
    {
        var ratios = new List<double>();
        foreach (var run in runs)
        {
            var baseline = raw.FirstOrDefault(r => r.Run == run.Run);
            if (baseline is not null && baseline.Fps > 0)
            {
                ratios.Add(run.Fps / baseline.Fps);
            }
        }

        return ratios.Count == 0 ? "-" : Spread(ratios, "0.00");
    }

    private static string Spread(List<double> values, string format) =>
        values.Count == 0 ? "-" : $"{F(Median(values), format)} ({F(values.Min(), format)}-{F(values.Max(), format)})";

    private static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    private static double Max(List<double> values) => values.Count == 0 ? double.NaN : values.Max();

    private static string F(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);
}
