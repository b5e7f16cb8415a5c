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
/// one migration's task marks them; readers get <see cref="Json"/> once it is done. The log line
/// adds, for a step that compiled code just in time (any thread), how many methods and how long:
/// what a compile-ahead step missed (docs/performance.md, "Gateway flows moved by a migration").
/// </summary>
internal sealed class MigrationPhases
{
    private readonly Stopwatch _watch = new();
    private readonly List<string> _jit = [];
    private TimeSpan _last;
    private long _jitMethods;
    private TimeSpan _jitTime;

    public JsonObject Json { get; } = [];

    public void Restart()
    {
        _watch.Restart();
        _last = TimeSpan.Zero;
        Begin();
    }

    /// <summary>Starts the clock at <paramref name="timestamp"/> (<see cref="Stopwatch.GetTimestamp"/>), taken earlier.</summary>
    public void Restart(long timestamp)
    {
        _watch.Restart();
        _last = -Stopwatch.GetElapsedTime(timestamp);
        Begin();
    }

    private void Begin()
    {
        _jit.Clear();
        _jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount();
        _jitTime = System.Runtime.JitInfo.GetCompilationTime();
    }

    public void Mark(string name)
    {
        var now = _watch.Elapsed;
        Json[name] = Math.Round((now - _last).TotalMilliseconds, 1);
        _last = now;
        var methods = System.Runtime.JitInfo.GetCompiledMethodCount();
        var time = System.Runtime.JitInfo.GetCompilationTime();
        _jit.Add(methods == _jitMethods ? string.Empty : string.Create(CultureInfo.InvariantCulture, $" (jit {methods - _jitMethods}, {(time - _jitTime).TotalMilliseconds:0.0})"));
        _jitMethods = methods;
        _jitTime = time;
    }

    public override string ToString() =>
        Json.Count == 0 ? "none" : string.Join(", ", Json.Select((p, i) => $"{p.Key} {p.Value!.GetValue<double>().ToString("0.0", CultureInfo.InvariantCulture)}{(i < _jit.Count ? _jit[i] : string.Empty)}"));
}
