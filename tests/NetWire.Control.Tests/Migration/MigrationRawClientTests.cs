using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NetWire.Control.Migration;
using NetWire.Control.Qmp;
using NetWire.Spice;
using NetWire.Spice.Channels;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using NetWire.Spice.Migration;
using NetWire.Testing;

namespace NetWire.Control.Tests.Migration;

/// <summary>
/// The migration sequence with a byte-level client on both appliances (loopback only): what the
/// source sends at each step, what the target holds back until the client's MIGRATE_END, the
/// client-state query, and every failure path (connect error, timeout, failed transfer,
/// cancel, SWITCH_HOST, refused state, a target never told to start).
/// </summary>
public sealed class MigrationRawClientTests
{
    private const byte Main = (byte)SpiceChannelType.Main;

    [Fact]
    public async Task ClientState_IsNoneThenReadyThenWaiting_AndBeginCarriesTheDestination()
    {
        await using var a = Appliance.Start();
        await using var qmp = await a.QmpAsync();
        Assert.Equal(1, await qmp.ClientStateAsync());

        var (client, _) = await LinkAsync(a);
        await using var _c = client;
        Assert.Equal(3, await qmp.ClientStateAsync());

        await qmp.OkAsync("client_migrate_info", new() { ["protocol"] = "spice", ["hostname"] = "target.example", ["port"] = 5931, ["cert-subject"] = "C=XX,O=NetWire" });
        var begin = await client.ReadUntilAsync(MainMessages.MigrateBegin);
        var destination = MigrationMessages.ParseDstInfo(begin.Body);
        Assert.Equal(new MigrationDestination("target.example", 5931, -1, "C=XX,O=NetWire"), destination);
        Assert.Equal(2, await qmp.ClientStateAsync());

        await client.SendMessageAsync(MainMessages.MigrateConnectError, []);
        var done = await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);
        Assert.Equal(1, (int)done["data"]!["failed"]!);
        Assert.Equal(0, (int)done["data"]!["connected"]!);
        Assert.Equal(3, await qmp.ClientStateAsync());
    }

    [Fact]
    public async Task SilentClient_TimesOut_AndItsLateConnectedIsAnsweredWithCancel()
    {
        await using var a = Appliance.Start();
        a.Spice.Migration.ConnectTimeout = TimeSpan.FromSeconds(1);
        await using var qmp = await a.QmpAsync();
        var (client, _) = await LinkAsync(a);
        await using var _c = client;

        await qmp.ClientMigrateInfoAsync(5931);
        await client.ReadUntilAsync(MainMessages.MigrateBegin);
        var done = await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);
        Assert.Equal(1, (int)done["data"]!["timed-out"]!);
        Assert.Equal(3, await qmp.ClientStateAsync());

        await client.SendMessageAsync(MainMessages.MigrateConnected, []);
        await client.ReadUntilAsync(MainMessages.MigrateCancel);
    }

    [Fact]
    public async Task CompletedMigration_TargetParksUntilMigrateEnd_ThenInitWithTheSameId_AndAdoptsThePassword()
    {
        var hello = new HelloChannel();
        await using var a = Appliance.Start();
        await using var b = Appliance.Start(incoming: true, configure: o => o.Channels.Add(hello));
        await using var qmp = await a.QmpAsync();
        var (source, id) = await LinkAsync(a);
        await using var _s = source;

        await qmp.ClientMigrateInfoAsync(b.SpicePort);
        await source.ReadUntilAsync(MainMessages.MigrateBegin);
        await using var target = await RawSpiceClient.ConnectAsync(b.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await target.LinkAsync(id, Main, Appliance.Password));
        await using var display = await RawSpiceClient.ConnectAsync(b.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await display.LinkAsync(id, (byte)SpiceChannelType.Display, Appliance.Password));
        var parked = Assert.Single(b.Spice.Sessions.Snapshot());
        Assert.True(parked.IsMigrationTarget);
        Assert.Equal(id, parked.SessionId);

        await source.SendMessageAsync(MainMessages.MigrateConnected, []);
        Assert.Equal(1, (int)(await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token))["data"]!["connected"]!);
        Reply.Ok(await qmp.ExecuteAsync("set_password", new() { ["protocol"] = "spice", ["password"] = "moved" }, Qmp.Token));
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        await source.ReadUntilAsync(MainMessages.MigrateEnd);
        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("completed", (string?)end["status"]);
        Assert.False(parked.Started.IsCompleted);
        Assert.Equal(0, hello.Runs);

        await target.SendMessageAsync(MainMessages.ClientMigrateEnd, []);
        var first = await target.ReadMessageAsync();
        Assert.Equal(MainMessages.Init, first.Header.Type);
        Assert.Equal(id, BinaryPrimitives.ReadUInt32LittleEndian(first.Body));
        var greeting = await display.ReadMessageAsync();
        Assert.Equal(HelloChannel.Type, greeting.Header.Type);
        Assert.Equal(1, hello.Runs);
        Assert.True(hello.SessionStartedWhenRun);

        await source.DisposeAsync();
        await Qmp.UntilAsync(() => a.Spice.Sessions.Count == 0, "the source session to end");
        await qmp.WaitEventAsync("SPICE_MIGRATE_COMPLETED", Qmp.Token);

        // The password set on A before the migration is B's now.
        await using var late = await RawSpiceClient.ConnectAsync(b.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await late.LinkAsync(0, Main, "moved"));
    }

    [Fact]
    public async Task FailedTransfer_ConnectedClientGetsCancel_AndStaysOnTheSource()
    {
        await using var a = Appliance.Start();
        await using var qmp = await a.QmpAsync();
        var (client, id) = await LinkAsync(a);
        await using var _c = client;
        await qmp.ClientMigrateInfoAsync(5931);
        await client.ReadUntilAsync(MainMessages.MigrateBegin);
        await client.SendMessageAsync(MainMessages.MigrateConnected, []);
        await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);

        await qmp.OkAsync("migrate", new() { ["uri"] = $"tcp:127.0.0.1:{ClosedPort()}" });
        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("failed", (string?)end["status"]);
        Assert.Contains("cannot reach the target", (string?)end["error-desc"], StringComparison.Ordinal);
        await client.ReadUntilAsync(MainMessages.MigrateCancel);

        // Still served by the source: its pings keep coming and the session is listed.
        await client.ReadUntilAsync(CommonMessages.Ping);
        Assert.Equal(id, Assert.Single(a.Spice.Sessions.Snapshot()).SessionId);
        Assert.Equal(3, await qmp.ClientStateAsync());
    }

    [Fact]
    public async Task MigrateCancel_BeforeMigrate_SendsCancelToTheConnectedClient()
    {
        await using var a = Appliance.Start();
        await using var qmp = await a.QmpAsync();
        var (client, _) = await LinkAsync(a);
        await using var _c = client;
        await qmp.ClientMigrateInfoAsync(5931);
        await client.ReadUntilAsync(MainMessages.MigrateBegin);
        await client.SendMessageAsync(MainMessages.MigrateConnected, []);
        await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token);

        await qmp.OkAsync("migrate_cancel");
        await client.ReadUntilAsync(MainMessages.MigrateCancel);
        Assert.Empty(await qmp.OkAsync("query-migrate") as System.Text.Json.Nodes.JsonObject ?? []);
    }

    [Fact]
    public async Task ClientWithoutSemiSeamless_GetsSwitchHostToTheTarget_AndIsClosedWhenItStays()
    {
        await using var a = Appliance.Start();
        a.Spice.Migration.LeaveTimeout = TimeSpan.FromSeconds(1);
        await using var b = Appliance.Start(incoming: true);
        await using var qmp = await a.QmpAsync();
        var (client, _) = await LinkAsync(a, mainCaps: 0);
        await using var _c = client;

        await qmp.ClientMigrateInfoAsync(b.SpicePort);
        Assert.Equal(1, (int)(await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token))["data"]!["without-cap"]!);
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var switchHost = await client.ReadUntilAsync(MainMessages.MigrateSwitchHost);
        var destination = MigrationMessages.ParseDstInfo(switchHost.Body);
        Assert.Equal(("127.0.0.1", b.SpicePort), (destination.Host, destination.Port));

        // The client ignores it and stays: the source closes it after the leave timeout.
        Assert.True(await client.ClosedByServerAsync());
        await Qmp.UntilAsync(() => a.Spice.Sessions.Count == 0, "the source to close the session");
    }

    [Fact]
    public async Task StateVersionMismatch_IsRefusedOnBothSides_SourceKeepsRunning_TargetKeepsWaiting()
    {
        await using var a = Appliance.Start();
        await using var b = Appliance.Start(incoming: true);
        await using var qmp = await a.QmpAsync();
        var (client, _) = await LinkAsync(a);
        await using var _c = client;

        a.Control.Migration.StreamVersion = 9;
        a.Control.Migration.StreamOldestCompatible = 9;
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        var end = await qmp.WaitMigrationEndAsync();
        Assert.Equal("failed", (string?)end["status"]);
        var error = (string)end["error-desc"]!;
        Assert.Contains("refused", error, StringComparison.Ordinal);
        Assert.Contains("version 9 needs a reader of version 9", error, StringComparison.Ordinal);
        Assert.Equal(1, b.Incoming!.Refused);
        Assert.False(b.Incoming.Adopted.IsCompleted);

        // The source still serves its client, and a good stream is then taken.
        await client.ReadUntilAsync(CommonMessages.Ping);
        a.Control.Migration.StreamVersion = Core.State.StateStream.CurrentVersion;
        a.Control.Migration.StreamOldestCompatible = Core.State.StateStream.OldestCompatibleVersion;
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
        Assert.Contains("spice", (await b.Incoming.Adopted).Adopted);
    }

    [Fact]
    public async Task GarbageOnTheIncomingPort_IsRefusedWithAReason_AndTheTargetKeepsWaiting()
    {
        await using var b = Appliance.Start(incoming: true);
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(b.Incoming!.LocalEndPoint, Qmp.Token);
            await using var stream = new NetworkStream(socket);
            await stream.WriteAsync(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Qmp.Token);
            var reply = await MigrationWire.ReadReplyAsync(stream, Qmp.Token);
            Assert.False(reply.Accepted);
            Assert.Contains("not a NetWire state stream", reply.Text, StringComparison.Ordinal);
        }

        Assert.Equal(1, b.Incoming.Refused);
        await using var a = Appliance.Start();
        await using var qmp = await a.QmpAsync();
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
    }

    [Fact]
    public async Task TargetThatNeverGetsMigrateEnd_DropsTheParkedClient_AfterTheState()
    {
        await using var a = Appliance.Start();
        await using var b = Appliance.Start(incoming: true, configure: o => o.MigrationTargetTimeout = TimeSpan.FromSeconds(2));
        await using var qmp = await a.QmpAsync();
        var (source, target, _) = await ConnectToTargetAsync(a, b, qmp);
        await using var _s = source;
        await using var _t = target;

        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
        Assert.True(await target.ClosedByServerAsync());
        await Qmp.UntilAsync(() => b.Spice.Sessions.Count == 0, "the parked session to be dropped");
    }

    [Fact]
    public async Task AClientParkedLongerThanTheTimeout_BeforeTheStateArrives_IsStillServed()
    {
        await using var a = Appliance.Start();
        await using var b = Appliance.Start(incoming: true, configure: o => o.MigrationTargetTimeout = TimeSpan.FromSeconds(1));
        await using var qmp = await a.QmpAsync();
        var (source, target, id) = await ConnectToTargetAsync(a, b, qmp);
        await using var _s = source;
        await using var _t = target;

        // A whole-VM move runs QEMU's migration here (docs/migration.md), minutes for a large
        // VM: three of the target's timeouts pass before the state is sent.
        await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
        var parked = Assert.Single(b.Spice.Sessions.Snapshot());
        Assert.Null(parked.EndedBy);

        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        await source.ReadUntilAsync(MainMessages.MigrateEnd);
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);
        await target.SendMessageAsync(MainMessages.ClientMigrateEnd, []);
        var first = await target.ReadMessageAsync();
        Assert.Equal(MainMessages.Init, first.Header.Type);
        Assert.Equal(id, BinaryPrimitives.ReadUInt32LittleEndian(first.Body));
        Assert.True(await parked.Started);
    }

    [Fact]
    public async Task MigrateEndFromASessionTheStateDidNotAnnounce_IsRefusedWithoutInit()
    {
        await using var a = Appliance.Start();
        await using var b = Appliance.Start(incoming: true);
        await using var qmp = await a.QmpAsync();
        await qmp.OkAsync("migrate", new() { ["uri"] = b.IncomingUri });
        Assert.Equal("completed", (string?)(await qmp.WaitMigrationEndAsync())["status"]);

        await using var target = await RawSpiceClient.ConnectAsync(b.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await target.LinkAsync(0x777, Main, Appliance.Password));
        await target.SendMessageAsync(MainMessages.ClientMigrateEnd, []);
        Assert.Null(await target.ReadExactlyOrNullAsync(1));
    }

    [Fact]
    public async Task NormalServer_RefusesAMainLinkWithAnUnknownConnectionId()
    {
        await using var a = Appliance.Start();
        await using var client = await RawSpiceClient.ConnectAsync(a.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.BadConnectionId, await client.LinkAsync(0x1234, Main, Appliance.Password));
    }

    private static async Task<(RawSpiceClient Client, uint SessionId)> LinkAsync(Appliance appliance, uint mainCaps = RawSpiceClient.GtkMainCaps)
    {
        var client = await RawSpiceClient.ConnectAsync(appliance.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await client.LinkAsync(0, Main, Appliance.Password, channelCaps: [mainCaps]));
        var init = await client.ReadUntilAsync(MainMessages.Init);
        return (client, BinaryPrimitives.ReadUInt32LittleEndian(init.Body));
    }

    /// <summary>
    /// A client on <paramref name="a"/> told to migrate to <paramref name="b"/>: linked to B's main
    /// (parked) and MIGRATE_CONNECTED answered, the connect phase done. Its source link, its target
    /// link and its session id.
    /// </summary>
    private static async Task<(RawSpiceClient Source, RawSpiceClient Target, uint SessionId)> ConnectToTargetAsync(Appliance a, Appliance b, QmpClient qmp)
    {
        var (source, id) = await LinkAsync(a);
        await qmp.ClientMigrateInfoAsync(b.SpicePort);
        await source.ReadUntilAsync(MainMessages.MigrateBegin);
        var target = await RawSpiceClient.ConnectAsync(b.Spice.LocalEndPoint);
        Assert.Equal(SpiceLinkErr.Ok, await target.LinkAsync(id, Main, Appliance.Password));
        Assert.True(Assert.Single(b.Spice.Sessions.Snapshot()).IsMigrationTarget);
        await source.SendMessageAsync(MainMessages.MigrateConnected, []);
        Assert.Equal(1, (int)(await qmp.WaitEventAsync("SPICE_MIGRATE_CONNECT_DONE", Qmp.Token))["data"]!["connected"]!);
        return (source, target, id);
    }

    /// <summary>A loopback port nothing listens on (bound, then released).</summary>
    private static int ClosedPort()
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>A display channel that sends one message as it starts and records whether its session had started.</summary>
    private sealed class HelloChannel : ISpiceChannelService
    {
        public const ushort Type = 200;

        private int _runs;

        public int Runs => Volatile.Read(ref _runs);

        public bool SessionStartedWhenRun { get; private set; }

        SpiceChannelType ISpiceChannelService.Type => SpiceChannelType.Display;

        public byte Id => 0;

        public uint[] ChannelCaps => [];

        public async Task RunAsync(Stream stream, SpiceLinkMess link, SpiceSession session, CancellationToken cancellationToken)
        {
            SessionStartedWhenRun = session.Started.IsCompletedSuccessfully && session.Started.Result;
            Interlocked.Increment(ref _runs);
            await using (stream)
            {
                var mini = link.HasCommonCap(SpiceCaps.MiniHeader);
                var header = new byte[DataHeader.FullLength];
                var length = new DataHeader(1, Type, 0).WriteTo(header, mini);
                await stream.WriteAsync(header.AsMemory(0, length), cancellationToken);
                var sink = new byte[256];
                while (await stream.ReadAsync(sink, cancellationToken) > 0)
                {
                }
            }
        }
    }
}
