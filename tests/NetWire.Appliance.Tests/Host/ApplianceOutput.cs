using System.Globalization;
using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>The lines of <c>netwire serve</c> the host tests wait for, and the ports they name.</summary>
internal static partial class ApplianceOutput
{
    /// <summary>Waits for the line <paramref name="regex"/> matches and returns the port it names.</summary>
    public static async Task<int> PortAsync(ManagedProcess appliance, Regex regex, TimeSpan wait) =>
        int.Parse(regex.Match(await appliance.WaitForLineAsync(regex.IsMatch, wait)).Groups[1].Value, CultureInfo.InvariantCulture);

    /// <summary>Waits until the control socket answers.</summary>
    public static Task ControlSocketAsync(ManagedProcess appliance, TimeSpan wait) =>
        appliance.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), wait);

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    public static partial Regex SpiceListening();

    [GeneratedRegex(@"Waiting for incoming migration on 127\.0\.0\.1:(\d+)")]
    public static partial Regex IncomingListening();
}
