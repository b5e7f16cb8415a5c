namespace NetWire.Core.State;

/// <summary>
/// The state sections of one appliance. Parts register at start-up; <c>migrate</c> writes them
/// all and <c>--incoming</c> adopts them. Thread-safe.
/// </summary>
public sealed class StateRegistry
{
    private readonly Lock _gate = new();
    private readonly List<IStateSection> _sections = [];

    /// <summary>Adds a section.</summary>
    /// <exception cref="ArgumentException">Its name is invalid or already registered.</exception>
    public void Register(IStateSection section)
    {
        if (!StateStream.IsValidName(section.Name))
        {
            throw new ArgumentException($"state section name '{section.Name}' is invalid: 1 to {StateStream.MaxNameLength} of a-z 0-9 . - _", nameof(section));
        }

        lock (_gate)
        {
            if (_sections.Exists(s => s.Name == section.Name))
            {
                throw new ArgumentException($"state section '{section.Name}' is registered twice", nameof(section));
            }

            _sections.Add(section);
        }
    }

    /// <summary>The registered sections, in registration order (a copy).</summary>
    public IReadOnlyList<IStateSection> Sections
    {
        get
        {
            lock (_gate)
            {
                return _sections.ToArray();
            }
        }
    }

    /// <summary>The whole state as one stream.</summary>
    public byte[] Build(ushort version = StateStream.CurrentVersion, ushort oldestCompatible = StateStream.OldestCompatibleVersion) =>
        StateStream.Build(Sections, version, oldestCompatible);

    /// <summary>
    /// Parses every known section of <paramref name="document"/>, then, only if all parsed,
    /// applies them in stream order. Sections nobody registered are skipped and reported (a
    /// newer source may carry more than this NetWire knows).
    /// </summary>
    /// <exception cref="StateFormatException">A section is malformed; nothing was applied.</exception>
    public StateAdoption Adopt(StateDocument document)
    {
        var sections = Sections.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var apply = new List<Action>();
        var adopted = new List<string>();
        var unknown = new List<string>();
        foreach (var section in document.Sections)
        {
            if (!sections.TryGetValue(section.Name, out var owner))
            {
                unknown.Add(section.Name);
                continue;
            }

            var reader = new StateSectionReader(section.Name, section.Data);
            try
            {
                apply.Add(owner.Read(reader));
            }
            catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidDataException or OverflowException)
            {
                throw new StateFormatException($"section '{section.Name}': {ex.Message}", ex);
            }
            adopted.Add(section.Name);
        }

        foreach (var action in apply)
        {
            action();
        }

        return new StateAdoption(adopted, unknown);
    }
}

/// <summary>What <see cref="StateRegistry.Adopt"/> did: sections applied and sections skipped as unknown.</summary>
public sealed record StateAdoption(IReadOnlyList<string> Adopted, IReadOnlyList<string> Unknown);
