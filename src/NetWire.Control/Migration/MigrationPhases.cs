using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace NetWire.Control.Migration;

/// <summary>
/// How long each step of a migration took, in milliseconds, in the order they ran
/// (docs/migration.md, "Handover"). The source's are <c>query-migrate</c>'s <c>phases</c> and log
/// event 7103: freeze, state (the stream built), connect (what is left of opening the
/// connection, which starts with the freeze), transfer (sent, read and checked by the target),
/// release (the source let go), restore (the target's restore and reply), unlock. A target's are
/// <c>query-migrate</c>'s <c>incoming.phases</c> and event 7117: read (header to the whole stream,
/// which includes the source's freeze and state), check, commit (waiting for the source's
/// release), apply, reply, unlock (waiting for the source's unlock), activate. Not thread-safe:
/// one migration's task marks them; readers get <see cref="Json"/> once it is done.
/// </summary>
internal sealed class MigrationPhases
{
    private readonly Stopwatch _watch = new();
    private TimeSpan _last;

    public JsonObject Json { get; } = [];

    public void Restart()
    {
        _watch.Restart();
        _last = TimeSpan.Zero;
    }

    public void Mark(string name)
    {
        var now = _watch.Elapsed;
        Json[name] = Math.Round((now - _last).TotalMilliseconds, 1);
        _last = now;
    }

    public override string ToString() =>
        Json.Count == 0 ? "none" : string.Join(", ", Json.Select(p => $"{p.Key} {p.Value!.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture)}"));
}
