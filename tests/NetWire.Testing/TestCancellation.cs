using Xunit;

namespace NetWire.Testing;

/// <summary>
/// The running test's cancellation token. Harness waits observe it on their own, so tests need
/// not pass one (xunit's analyzer would otherwise demand a token on every harness call).
/// Cleanup never uses it: a cancelled test must still end its processes and namespaces.
/// </summary>
internal static class TestCancellation
{
    public static CancellationToken Token => TestContext.Current.CancellationToken;
}
