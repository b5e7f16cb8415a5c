using System.Text.Json;
using System.Text.Json.Nodes;

namespace NetWire.Control.Qmp;

/// <summary>The JSON type a QMP argument must have.</summary>
internal enum QmpType
{
    String,
    Int,
    Bool,
}

/// <summary>One declared argument of a command.</summary>
internal readonly record struct QmpParameter(string Name, QmpType Type, bool Optional = false)
{
    public string TypeName => Type switch
    {
        QmpType.String => "string",
        QmpType.Int => "integer",
        _ => "boolean",
    };
}

/// <summary>
/// A command's arguments after validation against its <see cref="QmpParameter"/> list: every
/// required one present, none unknown, each of its declared type. Errors use QEMU's wording.
/// </summary>
internal sealed class QmpArguments
{
    private readonly JsonObject _values;

    private QmpArguments(JsonObject values) => _values = values;

    /// <exception cref="QmpException">GenericError: missing, unexpected or mistyped argument.</exception>
    public static QmpArguments Validate(JsonObject? arguments, IReadOnlyList<QmpParameter> parameters)
    {
        var values = arguments ?? [];
        foreach (var (name, _) in values)
        {
            if (!Contains(parameters, name))
            {
                throw QmpException.Generic($"Parameter '{name}' is unexpected");
            }
        }

        foreach (var parameter in parameters)
        {
            if (!values.TryGetPropertyValue(parameter.Name, out var value) || value is null)
            {
                if (parameter.Optional)
                {
                    continue;
                }

                throw QmpException.Generic($"Parameter '{parameter.Name}' is missing");
            }

            if (!HasType(value, parameter.Type))
            {
                throw QmpException.Generic($"Invalid parameter type for '{parameter.Name}', expected: {parameter.TypeName}");
            }
        }

        return new QmpArguments(values);
    }

    public string? GetString(string name) => _values[name]?.GetValue<string>();

    public long? GetInt(string name) => _values[name] is JsonValue value && value.TryGetValue<long>(out var n) ? n : null;

    public bool? GetBool(string name) => _values[name]?.GetValue<bool>();

    private static bool Contains(IReadOnlyList<QmpParameter> parameters, string name)
    {
        foreach (var parameter in parameters)
        {
            if (parameter.Name == name)
            {
                return true;
            }
        }

        return false;
    }

    private static bool HasType(JsonNode value, QmpType type)
    {
        if (value is not JsonValue scalar)
        {
            return false;
        }

        return type switch
        {
            QmpType.String => scalar.GetValueKind() == JsonValueKind.String,
            QmpType.Int => scalar.GetValueKind() == JsonValueKind.Number && scalar.TryGetValue<long>(out _),
            _ => scalar.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
        };
    }
}
