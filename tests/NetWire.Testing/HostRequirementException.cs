namespace NetWire.Testing;

/// <summary>
/// A host requirement is missing. Outside CI the message carries xunit's dynamic skip token,
/// so the test is reported as skipped; in CI it is an ordinary failure.
/// </summary>
public sealed class HostRequirementException : Exception
{
    /// <summary>Creates the exception with the message xunit reports.</summary>
    public HostRequirementException(string message)
        : base(message)
    {
    }
}
