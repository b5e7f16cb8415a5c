using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using NetWire.Core.Metrics;
using Prometheus;

namespace NetWire.Appliance;

/// <summary>
/// Publishes every instrument of the <c>NetWire</c> meters in a prometheus-net registry, whatever
/// its name and whenever it was created: counters as Prometheus counters (<c>_total</c>), gauges
/// and up-down counters as gauges, histograms as histograms, tags as labels. Observable
/// instruments are read when the registry is collected (a scrape).
/// </summary>
/// <remarks>
/// prometheus-net's own MeterAdapter turns every counter into a gauge (so <c>rate()</c> and the
/// counter type are lost) and, in 8.2.1, published nothing for our observable instruments in a
/// custom registry; this bridge is the mapping only, and prometheus-net still owns the registry,
/// the text format and the HTTP endpoint. Names: the instrument name with '.' as '_', plus the
/// unit (<c>By</c> as <c>_bytes</c>, <c>s</c> as <c>_seconds</c>) when the name lacks it, plus
/// <c>_total</c> for counters: <c>netwire.wire.frames</c> is <c>netwire_wire_frames_total</c>.
/// A measurement whose tag names differ from the first one of its instrument is not published
/// (Prometheus needs one label set per family).
/// </remarks>
internal sealed class MeterBridge : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly MetricFactory _factory;
    private readonly ConcurrentDictionary<Instrument, Family> _families = new();
    private volatile bool _disposed;

    public MeterBridge(CollectorRegistry registry)
    {
        _factory = Metrics.WithCustomRegistry(registry);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == WireMetrics.MeterName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        _listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        _listener.Start();
        registry.AddBeforeCollectCallback(() =>
        {
            if (!_disposed)
            {
                _listener.RecordObservableInstruments();
            }
        });
    }

    public void Dispose()
    {
        _disposed = true;
        _listener.Dispose();
    }

    /// <summary>The Prometheus name of an instrument (see the remarks).</summary>
    public static string PrometheusName(Instrument instrument)
    {
        var name = instrument.Name.Replace('.', '_').Replace('-', '_');
        var unit = instrument.Unit switch
        {
            "By" => "_bytes",
            "s" => "_seconds",
            _ => "",
        };
        if (unit.Length > 0 && !name.EndsWith(unit, StringComparison.Ordinal))
        {
            name += unit;
        }

        return IsCounter(instrument) ? name + "_total" : name;
    }

    private static bool IsCounter(Instrument instrument)
    {
        var type = instrument.GetType();
        return type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Counter<>) || type.GetGenericTypeDefinition() == typeof(ObservableCounter<>));
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (!_families.TryGetValue(instrument, out var family))
        {
            family = _families.GetOrAdd(instrument, Create(instrument, tags));
        }

        var values = new string[family.LabelNames.Length];
        if (tags.Length != values.Length)
        {
            return;
        }

        foreach (var tag in tags)
        {
            var index = Array.IndexOf(family.LabelNames, tag.Key.Replace('.', '_'));
            if (index < 0)
            {
                return;
            }

            values[index] = tag.Value?.ToString() ?? "";
        }

        var type = instrument.GetType().GetGenericTypeDefinition();
        switch (family.Collector)
        {
            case Counter counter when type == typeof(ObservableCounter<>):
                counter.WithLabels(values).IncTo(value);
                break;
            case Counter counter:
                counter.WithLabels(values).Inc(value);
                break;
            case Gauge gauge when type == typeof(UpDownCounter<>):
                gauge.WithLabels(values).Inc(value);
                break;
            case Gauge gauge:
                gauge.WithLabels(values).Set(value);
                break;
            case Histogram histogram:
                histogram.WithLabels(values).Observe(value);
                break;
        }
    }

    /// <summary>The family for an instrument's first measurement: its label names are that measurement's tag names, sorted.</summary>
    private Family Create(Instrument instrument, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var names = new string[tags.Length];
        for (var i = 0; i < tags.Length; i++)
        {
            names[i] = tags[i].Key.Replace('.', '_');
        }

        Array.Sort(names, StringComparer.Ordinal);
        var name = PrometheusName(instrument);
        var help = string.IsNullOrEmpty(instrument.Description) ? instrument.Name : instrument.Description;
        var type = instrument.GetType().GetGenericTypeDefinition();
        Collector collector = type == typeof(Counter<>) || type == typeof(ObservableCounter<>)
            ? _factory.CreateCounter(name, help, names)
            : type == typeof(Histogram<>)
                ? _factory.CreateHistogram(name, help, names)
                : _factory.CreateGauge(name, help, names);
        return new Family(names, collector);
    }

    private sealed record Family(string[] LabelNames, Collector Collector);
}
