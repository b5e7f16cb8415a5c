using Xunit;

namespace NetWire.Testing;

/// <summary>Waits for a condition that another thread makes true (a server's counter, a listed channel).</summary>
public static class Poll
{
    /// <summary>Checks <paramref name="condition"/> every 25 ms; fails the test naming <paramref name="what"/> after 10 s.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25, TestContext.Current.CancellationToken);
        }

        Assert.True(condition(), $"within 10 s: {what}");
    }
}
