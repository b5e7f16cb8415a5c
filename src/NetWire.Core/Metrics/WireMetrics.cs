using System.Diagnostics.Metrics;
using NetWire.Core.Wire;

namespace NetWire.Core.Metrics;

/// <summary>
/// Publishes the counters of registered wire ends through System.Diagnostics.Metrics (meter
/// <c>NetWire</c>), as observable instruments read on collection: the hot path only increments
/// plain fields.
/// </summary>
public sealed class WireMetrics : IDisposable
{
    /// <summary>The meter name tools subscribe to (dotnet-counters, OpenTelemetry).</summary>
    public const string MeterName = "NetWire";

    private static readonly DropReason[] s_reasons = Enum.GetValues<DropReason>();

    private readonly Meter _meter;

    /// <summary>Registered ends; copy-on-write under the lock so collection needs none.</summary>
    private WireEnd[] _ends = [];
    private readonly Lock _lock = new();

    /// <summary>Creates the meter and its instruments.</summary>
    public WireMetrics(IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _meter.CreateObservableCounter("netwire.wire.frames", () => Measure(static (c, tags) => Both(c.RxFrames, c.TxFrames, tags)), "{frame}", "Frames received from and transmitted to each wire end's device");
        _meter.CreateObservableCounter("netwire.wire.bytes", () => Measure(static (c, tags) => Both(c.RxBytes, c.TxBytes, tags)), "By", "Bytes received from and transmitted to each wire end's device");
        _meter.CreateObservableCounter("netwire.wire.drops", MeasureDrops, "{frame}", "Frames dropped, by wire end and reason");
    }

    /// <summary>Adds an end to what is published.</summary>
    public void Register(WireEnd end)
    {
        lock (_lock)
        {
            _ends = [.. _ends, end];
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _meter.Dispose();

    private List<Measurement<long>> Measure(Func<WireCounters, KeyValuePair<string, object?>, IEnumerable<Measurement<long>>> select)
    {
        var list = new List<Measurement<long>>();
        foreach (var end in Volatile.Read(ref _ends))
        {
            list.AddRange(select(end.Counters, new KeyValuePair<string, object?>("end", end.Name)));
        }

        return list;
    }

    private static Measurement<long>[] Both(long rx, long tx, KeyValuePair<string, object?> end) =>
    [
        new(rx, end, new("direction", "rx")),
        new(tx, end, new("direction", "tx")),
    ];

    private List<Measurement<long>> MeasureDrops()
    {
        var list = new List<Measurement<long>>();
        foreach (var end in Volatile.Read(ref _ends))
        {
            end.RefreshCounters();
            foreach (var reason in s_reasons)
            {
                list.Add(new(end.Counters.Drops(reason), new("end", end.Name), new("reason", reason.ToString())));
            }
        }

        return list;
    }
}
