using System.Diagnostics.Metrics;
using NetWire.Core.Metrics;
using NetWire.Core.Wire;
using NetWire.Testing;

namespace NetWire.Core.Tests.Wire;

public sealed class WireMetricsTests
{
    [Fact]
    public void ObservableInstruments_ReportEachEndsCounters_WithTags()
    {
        using var metrics = new WireMetrics();
        var end = new InMemoryWireEnd("metered-" + Guid.NewGuid().ToString("N"), 4);
        metrics.Register(end);
        end.Counters.Received(100);
        end.Counters.Received(60);
        end.Counters.Transmitted(42);
        end.Counters.Dropped(DropReason.PeerFull, 3);

        var seen = new List<(string Instrument, long Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == WireMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var map = new Dictionary<string, object?>();
            foreach (var tag in tags)
            {
                map[tag.Key] = tag.Value;
            }

            if (Equals(map.GetValueOrDefault("end"), end.Name))
            {
                seen.Add((instrument.Name, value, map));
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();

        Assert.Contains(seen, m => m.Instrument == "netwire.wire.frames" && m.Value == 2 && Equals(m.Tags["direction"], "rx"));
        Assert.Contains(seen, m => m.Instrument == "netwire.wire.frames" && m.Value == 1 && Equals(m.Tags["direction"], "tx"));
        Assert.Contains(seen, m => m.Instrument == "netwire.wire.bytes" && m.Value == 160 && Equals(m.Tags["direction"], "rx"));
        Assert.Contains(seen, m => m.Instrument == "netwire.wire.drops" && m.Value == 3 && Equals(m.Tags["reason"], "PeerFull"));
    }
}
