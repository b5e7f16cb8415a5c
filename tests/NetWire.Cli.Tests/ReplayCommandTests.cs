using NetWire.Cli.Commands;

namespace NetWire.Cli.Tests;

/// <summary><c>netwire replay</c>'s progress line: the time left.</summary>
public sealed class ReplayCommandTests
{
    [Theory]
    [InlineData(0L, 10.0, "0:00:00")]
    [InlineData(25L, 10.0, "0:00:03")]
    [InlineData(90_000L, 1.0, "25:00:00")]
    [InlineData(10L, 0.0, "--:--:--")]
    public void Eta_IsHoursMinutesSeconds_UnknownBeforeAnyRate(long left, double rate, string expected) =>
        Assert.Equal(expected, ReplayCommand.Eta(left, rate));
}
