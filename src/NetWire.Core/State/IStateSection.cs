namespace NetWire.Core.State;

/// <summary>
/// One named part of the appliance state that migration carries to the target (the SPICE
/// password, the gateway's DHCP leases, tunnel service registrations...). A part registers
/// itself in the <see cref="StateRegistry"/> of <c>netwire serve</c>.
/// </summary>
/// <remarks>
/// Reading is two-phase so that a bad stream changes nothing: <see cref="Read"/> parses and
/// validates the whole section and returns an action; the actions of all sections run only
/// after every section parsed and the stream's checksum matched. The action must not fail.
/// </remarks>
public interface IStateSection
{
    /// <summary>
    /// The section name in the stream: 1 to 64 characters of a-z, 0-9, '.', '-' and '_'
    /// (e.g. <c>spice.tickets</c>, <c>gateway.dhcp</c>).
    /// </summary>
    string Name { get; }

    /// <summary>Writes this part's current state. Called on the source while it keeps running.</summary>
    void Write(StateSectionWriter writer);

    /// <summary>
    /// Parses a section written by <see cref="Write"/> (maybe by an older or newer NetWire of a
    /// compatible stream version) and returns what adopts it.
    /// </summary>
    /// <exception cref="StateFormatException">The data is truncated, out of range or malformed.</exception>
    Action Read(StateSectionReader reader);
}
