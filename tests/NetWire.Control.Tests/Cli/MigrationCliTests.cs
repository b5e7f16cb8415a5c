using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using NetWire.Core.Packets;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Control.Tests.Cli;

/// <summary>
/// Two real <c>netwire serve</c> processes, the second with <c>--incoming</c>, migrated with
/// <c>netwire ctl</c> while a byte-level client follows the protocol on both.
/// </summary>
public sealed partial class MigrationCliTests
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task ServeIncoming_DrivenByCtl_TakesTheClientAndTheState()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-migcli-").FullName;
        try
        {
            var qmpA = "unix:" + Path.Combine(directory, "a.sock");
            var qmpB = "unix:" + Path.Combine(directory, "b.sock");
            await using var a = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--password", "s3cret", "--qmp", qmpA]);
            await using var b = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", "none", "--spice-port", "0", "--password", "s3cret", "--qmp", qmpB, "--incoming", "tcp:127.0.0.1:0"]);
            var spiceA = PortOf(await a.WaitForLineAsync(l => SpiceListening().IsMatch(l), TimeSpan.FromSeconds(60)), SpiceListening());
            var spiceB = PortOf(await b.WaitForLineAsync(l => SpiceListening().IsMatch(l), TimeSpan.FromSeconds(60)), SpiceListening());
            var incoming = PortOf(await b.WaitForLineAsync(l => IncomingListening().IsMatch(l), TimeSpan.FromSeconds(60)), IncomingListening());
            await a.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            await b.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            await using var source = await RawSpiceClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, spiceA));
            Assert.Equal(SpiceLinkErr.Ok, await source.LinkAsync(0, 1, "s3cret"));
            var id = BinaryPrimitives.ReadUInt32LittleEndian((await source.ReadUntilAsync(MainMessages.Init)).Body);
            Assert.Equal(3, await ClientStateAsync(qmpA));

            var info = await NetwireAsync("ctl", "--qmp", qmpA, "client_migrate_info", "protocol=spice", "hostname=127.0.0.1", $"port={spiceB}");
            Assert.True(info.ExitCode == 0, info.Stderr);
            await source.ReadUntilAsync(MainMessages.MigrateBegin);
            Assert.Equal(2, await ClientStateAsync(qmpA));
            await using var target = await RawSpiceClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, spiceB));
            Assert.Equal(SpiceLinkErr.Ok, await target.LinkAsync(id, 1, "s3cret"));
            await source.SendMessageAsync(MainMessages.MigrateConnected, []);
            await UntilAsync(async () => await ClientStateAsync(qmpA) == 3);

            var migrate = await NetwireAsync("ctl", "--qmp", qmpA, "migrate", $"uri=tcp:127.0.0.1:{incoming}");
            Assert.True(migrate.ExitCode == 0, migrate.Stderr);
            await source.ReadUntilAsync(MainMessages.MigrateEnd);
            await UntilAsync(async () => (string?)(await QueryAsync(qmpA, "query-migrate"))["status"] == "completed");
            await b.WaitForLineAsync(l => l.Contains("adopted sections [", StringComparison.Ordinal) && l.Contains("spice]", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            await target.SendMessageAsync(MainMessages.ClientMigrateEnd, []);
            var init = await target.ReadMessageAsync();
            Assert.Equal(MainMessages.Init, init.Header.Type);
            Assert.Equal(id, BinaryPrimitives.ReadUInt32LittleEndian(init.Body));
            var spice = await QueryAsync(qmpB, "query-spice");
            Assert.Equal(id, (uint)Assert.Single(spice["channels"]!.AsArray())!["connection-id"]!);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Migrate_CarriesTheWireCounters_ToTheTargetsEnds()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-migwire-").FullName;
        try
        {
            var qmpA = "unix:" + Path.Combine(directory, "a.sock");
            var qmpB = "unix:" + Path.Combine(directory, "b.sock");
            var guestA = Path.Combine(directory, "guest-a.sock");
            var guestB = Path.Combine(directory, "guest-b.sock");
            await using var a = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{guestA}", "--spice-port", "0", "--password", "s3cret", "--qmp", qmpA]);
            await using var b = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{guestB}", "--spice-port", "0", "--password", "s3cret", "--qmp", qmpB, "--incoming", "tcp:127.0.0.1:0"]);
            var incoming = PortOf(await b.WaitForLineAsync(l => IncomingListening().IsMatch(l), TimeSpan.FromSeconds(60)), IncomingListening());
            await a.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            await b.WaitForLineAsync(l => l.Contains("Control socket (QMP) on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            // A guest on A asks the gateway for its MAC five times and reads the five replies.
            using (var guest = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
            {
                await guest.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(guestA));
                for (var i = 0; i < 5; i++)
                {
                    await guest.SendAsync(Framed(ArpRequest()));
                }

                await UntilAsync(async () => (long)(await QueryAsync(qmpA, "query-wire"))["ends"]![0]!["tx-frames"]! == 5);
            }

            var before = (await QueryAsync(qmpA, "query-wire"))["ends"]![0]!;
            Assert.Equal(5, (long)before["rx-frames"]!);

            var migrate = await NetwireAsync("ctl", "--qmp", qmpA, "migrate", $"uri=tcp:127.0.0.1:{incoming}");
            Assert.True(migrate.ExitCode == 0, migrate.Stderr);
            await UntilAsync(async () => (string?)(await QueryAsync(qmpA, "query-migrate"))["status"] == "completed");
            await b.WaitForLineAsync(l => l.Contains("continues the source's counters", StringComparison.Ordinal) && l.Contains("guest", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            var after = (await QueryAsync(qmpB, "query-wire"))["ends"]!.AsArray();
            Assert.Equal(5, (long)after[0]!["rx-frames"]!);
            Assert.Equal(5, (long)after[0]!["tx-frames"]!);
            Assert.Equal((long)before["rx-bytes"]!, (long)after[0]!["rx-bytes"]!);
            Assert.Equal(1, (long)after[0]!["connections"]!);
            Assert.Equal(5, (long)after[1]!["tx-frames"]!);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static byte[] Framed(byte[] frame)
    {
        var framed = new byte[4 + frame.Length];
        BinaryPrimitives.WriteUInt32BigEndian(framed, (uint)frame.Length);
        frame.CopyTo(framed, 4);
        return framed;
    }

    /// <summary>ARP who-has 10.0.2.2 tell 10.0.2.15, from 52:54:00:12:34:56 (RFC 826), padded to 60 bytes.</summary>
    private static byte[] ArpRequest()
    {
        var frame = new byte[60];
        var mac = new MacAddress(0x5254_0012_3456);
        new EthernetHeader(MacAddress.Broadcast, mac, EtherType.Arp).WriteTo(frame);
        new ArpHeader(ArpOperation.Request, mac, 0x0A00020F, default, 0x0A000202).WriteTo(frame.AsSpan(EthernetFrame.HeaderLength));
        return frame;
    }

    [Theory]
    [InlineData("udp:127.0.0.1:4444")]
    [InlineData("tcp:localhost:4444")]
    [InlineData("tcp:127.0.0.1:99999")]
    public async Task ServeIncoming_BadUri_IsAUsageError(string uri)
    {
        var result = await NetwireAsync("serve", "--guest", "none", "--disable-ticketing", "--spice-port", "0", "--incoming", uri);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--incoming", result.Stderr, StringComparison.Ordinal);
    }

    private static async Task<JsonObject> QueryAsync(string qmp, string command)
    {
        var result = await NetwireAsync("ctl", "--qmp", qmp, command);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return (JsonObject)JsonNode.Parse(result.Stdout)!;
    }

    private static async Task<int> ClientStateAsync(string qmp) => (int)(await QueryAsync(qmp, "query-migrate-client-state"))["state"]!;

    private static async Task UntilAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 120; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(250, TestContext.Current.CancellationToken);
        }

        Assert.Fail("condition not met within 30 s of polling");
    }

    private static int PortOf(string line, Regex regex) => int.Parse(regex.Match(line).Groups[1].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"SPICE server listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex SpiceListening();

    [GeneratedRegex(@"Waiting for incoming migration on 127\.0\.0\.1:(\d+)")]
    private static partial Regex IncomingListening();
}
