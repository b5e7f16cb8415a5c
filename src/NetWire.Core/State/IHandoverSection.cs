namespace NetWire.Core.State;

/// <summary>
/// A state section of live things the source keeps running while the stream is sent (the
/// gateway's connections, the tunnel's sockets): the source holds them still while it writes
/// them, lets go only once the target has taken the stream, and carries on with them if the
/// migration fails before that. The target adopts them in two steps: the stream's actions (as
/// for every section), then <see cref="Activate"/> once the source confirms it has let go of
/// everything that could collide with them (docs/migration.md, "Handover").
/// </summary>
/// <remarks>
/// The source calls, in order: <see cref="FreezeAsync"/> (before <see cref="IStateSection.Write"/>),
/// then either <see cref="ThawAsync"/> (the migration failed or was cancelled: nothing was
/// released) or <see cref="Release"/> (the target prepared the stream) followed by
/// <see cref="Complete"/> (the target applied it, or failed after the release). On the target,
/// <see cref="TakeRefusals"/> follows <see cref="IStateSection.Read"/>: what the target cannot
/// take goes back to the source, which ends it itself (for a connection, the reset reaches the
/// host peer only from the source).
/// </remarks>
public interface IHandoverSection : IStateSection
{
    /// <summary>Source: stops what this section holds so that its state stops changing.</summary>
    Task FreezeAsync(CancellationToken cancellationToken);

    /// <summary>Source: the migration failed before <see cref="Release"/>; everything runs again.</summary>
    Task ThawAsync();

    /// <summary>
    /// Source: the target prepared the stream; <paramref name="refusals"/> is what its
    /// <see cref="TakeRefusals"/> returned (empty when it took everything, or null when the target
    /// did not know this section and took none of it). Let go of what the target takes, end the rest.
    /// </summary>
    void Release(ReadOnlyMemory<byte>? refusals);

    /// <summary>Source: the target applied the stream (or failed after the release); drop what was still held.</summary>
    void Complete();

    /// <summary>Source: what the last migration moved and ended, for <c>query-migrate</c>, once <see cref="Complete"/> ran; null before one.</summary>
    IReadOnlyDictionary<string, long>? LastResult { get; }

    /// <summary>Target: after <see cref="IStateSection.Read"/>, what of it this appliance cannot take, for the source's <see cref="Release"/>.</summary>
    ReadOnlyMemory<byte> TakeRefusals();

    /// <summary>Target: after the actions ran and the source let go: start what was adopted.</summary>
    void Activate();
}
