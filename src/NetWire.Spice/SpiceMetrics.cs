using System.Diagnostics.Metrics;
using NetWire.Core.Metrics;
using NetWire.Spice.Link;

namespace NetWire.Spice;

/// <summary>
/// The SPICE server's figures on the <c>NetWire</c> meter, read when collected: links by
/// outcome, links refused by SpiceLinkErr code (protocol.md §1.7), and live sessions.
/// </summary>
internal sealed class SpiceMetrics : IDisposable
{
    private static readonly LinkOutcome[] s_outcomes = Enum.GetValues<LinkOutcome>();
    private static readonly SpiceLinkErr[] s_errors = [.. Enum.GetValues<SpiceLinkErr>().Where(static e => e != SpiceLinkErr.Ok)];

    private readonly Meter _meter = new(WireMetrics.MeterName);

    public SpiceMetrics(SpiceServer server)
    {
        _meter.CreateObservableCounter("netwire.spice.links", () => Outcomes(server.Counters), "{link}", "SPICE connections by how their link stage ended (linked, timed_out, client_left, too_many_links)");
        _meter.CreateObservableCounter("netwire.spice.link_errors", () => Errors(server.Counters), "{link}", "SPICE links refused, by SpiceLinkErr code");
        _meter.CreateObservableGauge("netwire.spice.sessions", () => server.Sessions.Count, "{session}", "SPICE sessions (main channels) now");
    }

    public void Dispose() => _meter.Dispose();

    private static Measurement<long>[] Outcomes(SpiceLinkCounters counters)
    {
        var list = new Measurement<long>[s_outcomes.Length];
        for (var i = 0; i < s_outcomes.Length; i++)
        {
            list[i] = new(counters.Of(s_outcomes[i]), new KeyValuePair<string, object?>("outcome", Snake(s_outcomes[i].ToString())));
        }

        return list;
    }

    private static Measurement<long>[] Errors(SpiceLinkCounters counters)
    {
        var list = new Measurement<long>[s_errors.Length];
        for (var i = 0; i < s_errors.Length; i++)
        {
            list[i] = new(counters.Refused(s_errors[i]), new KeyValuePair<string, object?>("code", (int)s_errors[i]), new KeyValuePair<string, object?>("error", Snake(s_errors[i].ToString())));
        }

        return list;
    }

    private static string Snake(string name) => MetricNames.SnakeCase(name);
}
