using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// The migration target dies while the source's state stream is in flight: a real
/// <c>netwire serve --incoming</c> process, stopped (SIGSTOP) so that the stream sits unread in
/// its socket, then killed (SIGKILL). The source's <c>migrate</c> ends failed with the reason,
/// its client is told MIGRATE_CANCEL and stays, and the source's state goes whole to the next
/// target: nothing it holds is lost.
/// </summary>
public sealed partial class MigrationFaultTests
{
    private const int SigStop = 19;
    private const int SigKill = 9;

    [Fact]
    public async Task TargetKilledMidStream_FailsTheMigrationWithTheReason_AndTheSourceKeepsItsClientAndState()
    {
        await using var a = Appliance.Start();
        await using var qmp = await a.QmpAsync();
        await using var client = await RawSpiceClient.ConnectAsync(a.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, (byte)SpiceChannelType.Main, Appliance.Password, channelCaps: [RawSpiceClient.GtkMainCaps]));
        await client.ReadUntilAsync(MainMessages.Init);

        await using var target = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--disable-ticketing", "--incoming", "tcp:127.0.0.1:0"]);
        var listening = await target.WaitForLineAsync(l => l.Contains("Waiting for incoming migration on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var port = int.Parse(IncomingPort().Match(listening).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

        await qmp.ClientMigrateInfoAsync(5931);
        await client.ReadUntilAsync(MainMessages.MigrateBegin);
        await client.SendMessageAsync(MainMessages.MigrateConnected, []);
        await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);

        // The kernel still accepts for the stopped target and buffers the stream; the source has
        // sent all of it and waits for the reply when the target is killed.
        target.Signal(SigStop);
        await qmp.OkAsync("migrate", new() { ["uri"] = $"tcp:127.0.0.1:{port}" });
        await WaitForAsync(qmp, r => (string?)r["status"] == "active" && (long)r["state"]!["transferred"]! == (long)r["state"]!["total"]! && (long)r["state"]!["total"]! > 0);
        target.Signal(SigKill);
        await target.WaitForExitAsync(TimeSpan.FromSeconds(30));

        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("failed", (string?)end["status"]);
        var reason = (string?)end["error-desc"];
        Assert.False(string.IsNullOrWhiteSpace(reason));
        Assert.True(reason.Contains("reset", StringComparison.OrdinalIgnoreCase) || reason.Contains("without a reply", StringComparison.Ordinal), reason);
        await client.ReadUntilAsync(MainMessages.MigrateCancel);
        Assert.Single(a.Spice.Sessions.Snapshot());

        // The next target takes the source's whole state.
        await using var b = Appliance.Start(incoming: true);
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
        Assert.Contains("spice", (await b.Incoming!.Adopted).Adopted);
    }

    /// <summary>Polls query-migrate until <paramref name="condition"/> holds.</summary>
    private static async Task WaitForAsync(Control.Qmp.QmpClient qmp, Func<JsonObject, bool> condition)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Qmp.Token);
        limit.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            var reply = (JsonObject)await qmp.OkAsync("query-migrate");
            if (condition(reply))
            {
                return;
            }

            Assert.NotEqual("failed", (string?)reply["status"]);
            await Task.Delay(25, limit.Token);
        }
    }

    [GeneratedRegex(@"on [^ ]*:(\d+)")]
    private static partial Regex IncomingPort();
}
