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

    /// <summary>The registered sections that hold live things (<see cref="IHandoverSection"/>), in registration order.</summary>
    public IReadOnlyList<IHandoverSection> Handovers
    {
        get
        {
            lock (_gate)
            {
                return _sections.OfType<IHandoverSection>().ToArray();
            }
        }
    }

    /// <summary>
    /// Parses every known section of <paramref name="document"/>, then, only if all parsed,
    /// applies them in stream order and activates the handover sections. Sections nobody
    /// registered are skipped and reported (a newer source may carry more than this NetWire knows).
    /// </summary>
    /// <exception cref="StateFormatException">A section is malformed; nothing was applied.</exception>
    public StateAdoption Adopt(StateDocument document)
    {
        var plan = Prepare(document);
        plan.Apply();
        plan.Activate();
        return plan.Adoption;
    }

    /// <summary>
    /// Parses every known section of <paramref name="document"/> and applies nothing: the plan
    /// applies them later (<see cref="StatePlan.Apply"/>), once the source has released what the
    /// handover sections hold.
    /// </summary>
    /// <exception cref="StateFormatException">A section is malformed.</exception>
    public StatePlan Prepare(StateDocument document)
    {
        var sections = Sections.ToDictionary(s => s.Name, StringComparer.Ordinal);
        var apply = new List<Action>();
        var adopted = new List<string>();
        var unknown = new List<string>();
        var handovers = new List<(IHandoverSection Section, ReadOnlyMemory<byte> Refusals)>();
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

            if (owner is IHandoverSection handover)
            {
                handovers.Add((handover, handover.TakeRefusals()));
            }

            adopted.Add(section.Name);
        }

        return new StatePlan(apply, handovers, new StateAdoption(adopted, unknown));
    }
}

/// <summary>A parsed state stream waiting to be applied (<see cref="StateRegistry.Prepare"/>).</summary>
public sealed class StatePlan
{
    private readonly List<Action> _apply;
    private readonly List<(IHandoverSection Section, ReadOnlyMemory<byte> Refusals)> _handovers;

    internal StatePlan(List<Action> apply, List<(IHandoverSection Section, ReadOnlyMemory<byte> Refusals)> handovers, StateAdoption adoption)
    {
        _apply = apply;
        _handovers = handovers;
        Adoption = adoption;
    }

    /// <summary>The sections parsed and the sections skipped as unknown.</summary>
    public StateAdoption Adoption { get; }

    /// <summary>True when the stream holds a handover section: the source must let go before <see cref="Apply"/>.</summary>
    public bool HasHandover => _handovers.Count > 0;

    /// <summary>The handover sections parsed, each with what this appliance refuses of it.</summary>
    public IReadOnlyList<(string Name, ReadOnlyMemory<byte> Refusals)> Refusals => _handovers.ConvertAll(h => (h.Section.Name, h.Refusals));

    /// <summary>Runs every section's action, in stream order.</summary>
    public void Apply()
    {
        foreach (var action in _apply)
        {
            action();
        }
    }

    /// <summary>Starts what the handover sections adopted (the source has let go of it).</summary>
    public void Activate()
    {
        foreach (var (section, _) in _handovers)
        {
            section.Activate();
        }
    }
}

/// <summary>What <see cref="StateRegistry.Adopt"/> did: sections applied and sections skipped as unknown.</summary>
public sealed record StateAdoption(IReadOnlyList<string> Adopted, IReadOnlyList<string> Unknown);
