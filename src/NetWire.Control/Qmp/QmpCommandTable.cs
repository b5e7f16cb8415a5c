using System.Text.Json.Nodes;

namespace NetWire.Control.Qmp;

/// <summary>A command handler: validated arguments in, the <c>return</c> value out (null: <c>{}</c>).</summary>
internal delegate ValueTask<JsonNode?> QmpHandler(QmpArguments arguments, CancellationToken cancellationToken);

/// <summary>
/// A registered command: its name, declared arguments and handler. <paramref name="AfterReply"/>
/// runs once the success reply is queued (so <c>quit</c> answers before the appliance stops).
/// </summary>
internal sealed record QmpCommand(string Name, IReadOnlyList<QmpParameter> Parameters, QmpHandler Handler, Action? AfterReply = null);

/// <summary>The commands a <see cref="QmpServer"/> dispatches. Filled before the server starts, read-only after.</summary>
internal sealed class QmpCommandTable
{
    private readonly Dictionary<string, QmpCommand> _commands = new(StringComparer.Ordinal);

    public IEnumerable<string> Names => _commands.Keys;

    /// <summary>Adds a command; a second one with the same name is a programming error.</summary>
    public QmpCommandTable Add(string name, IReadOnlyList<QmpParameter> parameters, QmpHandler handler, Action? afterReply = null)
    {
        _commands.Add(name, new QmpCommand(name, parameters, handler, afterReply));
        return this;
    }

    /// <summary>Adds a command whose handler is synchronous.</summary>
    public QmpCommandTable Add(string name, IReadOnlyList<QmpParameter> parameters, Func<QmpArguments, JsonNode?> handler, Action? afterReply = null) =>
        Add(name, parameters, (arguments, _) => ValueTask.FromResult(handler(arguments)), afterReply);

    public bool TryGet(string name, out QmpCommand? command) => _commands.TryGetValue(name, out command);
}
