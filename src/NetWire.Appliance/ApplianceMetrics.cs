using System.Diagnostics.Metrics;
using NetWire.Control.Migration;
using NetWire.Core.Metrics;
using NetWire.Spice;
using NetWire.Spice.Link;

namespace NetWire.Appliance;

/// <summary>
/// The SPICE server's link stage and the migration target's listener as System.Diagnostics.Metrics
/// instruments of the <c>NetWire</c> meter (beside <see cref="WireMetrics"/>), observed on collection
/// from the counters the status file shows.
/// </summary>
internal sealed class ApplianceMetrics : IDisposable
{
    private static readonly (LinkOutcome Outcome, string Name)[] s_outcomes =
    [
        (LinkOutcome.Linked, "linked"),
        (LinkOutcome.Evicted, "evicted"),
        (LinkOutcome.TimedOut, "timed_out"),
        (LinkOutcome.ClientLeft, "client_left"),
        (LinkOutcome.TlsPlaintext, "tls_plaintext"),
        (LinkOutcome.TlsFailed, "tls_failed"),
        (LinkOutcome.TlsOnPlainPort, "tls_on_plain_port"),
    ];

    private static readonly SpiceLinkErr[] s_errors = [.. Enum.GetValues<SpiceLinkErr>().Where(static e => e != SpiceLinkErr.Ok)];

    private readonly Meter _meter;

    public ApplianceMetrics(SpiceServer spice, IncomingMigration? incoming, IMeterFactory? factory = null)
    {
        _meter = factory?.Create(WireMetrics.MeterName) ?? new Meter(WireMetrics.MeterName);
        _meter.CreateObservableCounter("netwire.spice.links", () => MeasureLinks(spice), "{connection}", "SPICE connections by how their link stage ended (linked, refused, evicted, timed_out, client_left, tls_plaintext, tls_failed, tls_on_plain_port)");
        _meter.CreateObservableGauge("netwire.spice.links_pending", () => spice.PendingLinks, "{connection}", "SPICE connections in the link stage now");
        _meter.CreateObservableGauge("netwire.spice.sessions", () => spice.Sessions.Count, "{session}", "SPICE main channel sessions now");
        _meter.CreateObservableCounter("netwire.spice.link_errors", () => MeasureErrors(spice), "{connection}", "SPICE links refused, by SpiceLinkErr code (protocol.md §1.7)");
        if (incoming is not null)
        {
            _meter.CreateObservableCounter("netwire.migration.incoming", () => MeasureIncoming(incoming), "{connection}", "Migration target connections: accepted, and those evicted, silent or refused (tls_refused: of the refused, those at the TLS handshake)");
        }
    }

    public void Dispose() => _meter.Dispose();

    private static Measurement<long>[] MeasureLinks(SpiceServer spice)
    {
        var list = new Measurement<long>[s_outcomes.Length + 1];
        for (var i = 0; i < s_outcomes.Length; i++)
        {
            list[i] = new(spice.Counters.Of(s_outcomes[i].Outcome), new KeyValuePair<string, object?>("outcome", s_outcomes[i].Name));
        }

        list[^1] = new(spice.Counters.TotalRefused, new KeyValuePair<string, object?>("outcome", "refused"));
        return list;
    }

    private static Measurement<long>[] MeasureErrors(SpiceServer spice)
    {
        var list = new Measurement<long>[s_errors.Length];
        for (var i = 0; i < s_errors.Length; i++)
        {
            list[i] = new(spice.Counters.Refused(s_errors[i]), new KeyValuePair<string, object?>("code", (int)s_errors[i]),
                new KeyValuePair<string, object?>("error", NetWire.Core.Naming.Words(s_errors[i].ToString(), '_')));
        }

        return list;
    }

    private static Measurement<long>[] MeasureIncoming(IncomingMigration incoming) =>
    [
        new(incoming.Accepted, new KeyValuePair<string, object?>("outcome", "accepted")),
        new(incoming.Evicted, new KeyValuePair<string, object?>("outcome", "evicted")),
        new(incoming.Silent, new KeyValuePair<string, object?>("outcome", "silent")),
        new(incoming.Refused, new KeyValuePair<string, object?>("outcome", "refused")),
        new(incoming.TlsRefused, new KeyValuePair<string, object?>("outcome", "tls_refused")),
    ];
}
