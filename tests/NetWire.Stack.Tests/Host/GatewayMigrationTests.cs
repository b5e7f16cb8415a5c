using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Core.Wire;
using NetWire.Stack.Migration;
using NetWire.Stack.Tests.Simulation;
using NetWire.Testing;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// A guest connection moves from one gateway to another in the middle of its streams: the test
/// TCP peer plays the guest, a real loopback socket the host peer, and the host socket moves
/// with TCP_REPAIR under the network lock (root and nft needed). Both streams arrive intact,
/// nobody sees a reset, and the counters say what moved.
/// </summary>
/// <remarks>
/// The migration runs the section's steps in the order the control socket's source and target
/// run them (docs/migration.md, "Handover"): freeze and write on the source, read on the
/// target, release with the target's refusals, apply, complete, activate.
/// </remarks>
[Trait("Category", "Host")]
public sealed partial class GatewayMigrationTests
{
    private const long StepMs = 10;

    /// <param name="outbound">
    /// The host peer listens on one of the host's non-loopback addresses, which the guest
    /// connects to directly, and the gateway binds its host socket to the outbound address
    /// 127.0.0.2 (docs/gateway.md, "Outbound address"): the restored socket keeps that source.
    /// </param>
    [Theory]
    [InlineData(0.2, 64 * 1024, false)]
    [InlineData(0.6, 256 * 1024, false)]
    [InlineData(0.4, 256 * 1024, true)]
    public async Task ConnectionMovesMidStream_StreamsArriveIntactBothWays_WithoutReset(double at, int bufferBytes, bool outbound)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nft");
        var cancellationToken = TestContext.Current.CancellationToken;
        var remote = outbound ? HostAddress() : IPAddress.Loopback;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(remote, 0));
        listener.Listen(4);
        var port = (ushort)((IPEndPoint)listener.LocalEndPoint!).Port;
        var accept = listener.AcceptAsync(cancellationToken).AsTask();

        var random = new Random(7);
        var guestData = new byte[3 << 20];
        var hostData = new byte[4 << 20];
        random.NextBytes(guestData);
        random.NextBytes(hostData);
        var options = new GatewayOptions { AllowHostLoopback = true, TcpBufferBytes = bufferBytes, OutboundAddress = outbound ? IPAddress.Parse("127.0.0.2") : null };
        var time = new FakeTimeProvider();
        await using var a = new Side(options, time, hold: false);
        await using var b = new Side(options, time, hold: true);
        var peer = new TestTcpPeer(guestData, 128 * 1024, 7, 4000);
        long now = 0;
        peer.Connect(IpAddr.FromIpv4(GuestIp), 40000, IpAddr.FromIpv4(outbound ? Ip.ToUInt(remote) : GatewayIp), port, now);
        var current = a;
        var hostReceived = HostSockets.ReadToEndAsync(accept, cancellationToken);
        var hostSent = WriteSlowlyAsync(accept, hostData, cancellationToken);
        var migrated = false;
        var frames = new List<byte[]>();
        var progress = System.Diagnostics.Stopwatch.StartNew();
        var lastReceived = 0;
        for (var step = 0; ; step++)
        {
            Assert.True(step < 2_000_000, $"no completion; {peer.Describe()}; {current.Describe()}");
            if (peer.Received.Length != lastReceived)
            {
                lastReceived = peer.Received.Length;
                progress.Restart();
            }

            Assert.True(progress.Elapsed < TimeSpan.FromSeconds(5) || peer.Received.Length == hostData.Length, $"stalled: migrated {migrated}; {peer.Describe()}; {current.Describe()}; host got {(hostReceived.IsCompleted ? "EOF" : "no EOF")}, {Counters(current)}");
            frames.Clear();
            current.Receiver.DrainTo(frames);
            var moved = frames.Count > 0;
            foreach (var frame in frames)
            {
                peer.OnFrame(frame, now);
            }

            Assert.False(peer.GotReset, $"the guest got a RST; {peer.Describe()}; migrated {migrated}, at {now} ms; host got {(hostReceived.IsCompleted ? hostReceived.Status.ToString() : "no EOF")}; source {Counters(a)}; target {Counters(b)}");
            peer.Read(64 * 1024);
            peer.TrySend(now);
            var output = peer.TakeOutput();
            moved |= output.Count > 0;
            current.Deliver(output);

            if (!migrated && peer.Received.Length >= hostData.Length * at)
            {
                await MigrateAsync(a, b);
                migrated = true;
                current = b;
                Assert.Equal(0, a.Count);
                Assert.True(b.Count == 1, $"the target has {b.Count} connections; source {Counters(a)}; target {Counters(b)}");
                continue;
            }

            if (peer.GotFin && peer.AllAcked && hostReceived.IsCompleted && current.Count == 0)
            {
                break;
            }

            if (!moved)
            {
                await Task.WhenAny(current.Receiver.WhenFrameAsync(), Task.Delay(1, cancellationToken));
                if (!current.Receiver.WhenFrameAsync().IsCompleted)
                {
                    time.Advance(TimeSpan.FromMilliseconds(StepMs));
                    now += StepMs;
                    current.OnTimer();
                    peer.OnTimer(now);
                }
            }
        }

        Assert.True(migrated);
        var fromHost = await hostReceived;
        await hostSent;

        // The accepted socket is used until here, so no collection finalizes it while a send waits.
        var hostSide = await accept;
        Assert.Equal(outbound ? IPAddress.Parse("127.0.0.2") : IPAddress.Loopback, ((IPEndPoint)hostSide.RemoteEndPoint!).Address);
        hostSide.Dispose();
        Assert.True(hostData.AsSpan().SequenceEqual(peer.Received), "host -> guest bytes differ");
        Assert.True(guestData.AsSpan().SequenceEqual(fromHost), "guest -> host bytes differ");
        Assert.Equal(1, a.Gateway.Counters.FlowsMovedOut);
        Assert.Equal(1, b.Gateway.Counters.FlowsMovedIn);
        Assert.All(Enum.GetValues<FlowResetReason>(), reason => Assert.Equal(0, a.Gateway.Counters.MigrationResets(reason) + b.Gateway.Counters.MigrationResets(reason)));
    }

    [Fact]
    public async Task TargetRefusesTheStream_TheSourceKeepsTheConnection()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nft");
        var cancellationToken = TestContext.Current.CancellationToken;
        using var listener = ListenOnLoopback(out var port);
        var accept = listener.AcceptAsync(cancellationToken).AsTask();
        var time = new FakeTimeProvider();
        await using var a = new Side(new GatewayOptions { AllowHostLoopback = true }, time, hold: false);
        var peer = new TestTcpPeer([1, 2, 3], 64 * 1024, 7, 9000);
        peer.Connect(IpAddr.FromIpv4(GuestIp), 40001, IpAddr.FromIpv4(GatewayIp), port, 0);
        a.Deliver(peer.TakeOutput());
        using var host = await accept;
        await PumpUntilAsync(a, peer, () => a.Describe().StartsWith("Established", StringComparison.Ordinal));

        // The source freezes and writes; the stream is cut before the target confirms.
        using var section = new GatewayFlowSection(() => a.Gateway, NullLogger.Instance);
        await section.FreezeAsync(cancellationToken);
        section.Write(new StateSectionWriter());
        await section.ThawAsync();

        // The connection still works both ways on the source.
        await host.SendAsync(new byte[] { 42, 43 }, SocketFlags.None, cancellationToken);
        await PumpUntilAsync(a, peer, () => peer.Received.Length == 2);
        Assert.Equal(new byte[] { 42, 43 }, peer.Received);
        var got = new byte[3];
        await PumpUntilAsync(a, peer, () => host.Available >= 3);
        Assert.Equal(3, host.Receive(got));
        Assert.Equal(new byte[] { 1, 2, 3 }, got);
        Assert.Equal(1, a.Count);
        Assert.Equal(0, a.Gateway.Counters.FlowsMovedOut);
    }

    [Fact]
    public async Task GuestForwardConnection_IsReset_WhileANatConnectionMoves()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nft");
        var cancellationToken = TestContext.Current.CancellationToken;
        using var natListener = ListenOnLoopback(out var natPort);
        using var forwardListener = ListenOnLoopback(out var forwardPort);
        var natAccept = natListener.AcceptAsync(cancellationToken).AsTask();
        var forwardAccept = forwardListener.AcceptAsync(cancellationToken).AsTask();

        // The guest's connection to 10.0.2.100:5000 goes to a host socket that the target's options
        // need not know of: it stays, and is reset, while the ordinary connection moves.
        var options = new GatewayOptions
        {
            AllowHostLoopback = true,
            GuestForwards = [NetWire.Stack.Nat.GuestForward.Parse($"tcp:10.0.2.100:5000-127.0.0.1:{forwardPort}")],
        };
        var time = new FakeTimeProvider();
        await using var a = new Side(options, time, hold: false);
        await using var b = new Side(options, time, hold: true);
        // More than the host sockets' buffers take while nobody reads them: no FIN goes out before the migration.
        var nat = new TestTcpPeer(new byte[8 << 20], 64 * 1024, 7, 9000);
        nat.Connect(IpAddr.FromIpv4(GuestIp), 40002, IpAddr.FromIpv4(GatewayIp), natPort, 0);
        var forwarded = new TestTcpPeer(new byte[8 << 20], 64 * 1024, 7, 9100);
        forwarded.Connect(IpAddr.FromIpv4(GuestIp), 40003, IpAddr.FromIpv4(0x0A000264), 5000, 0);
        var peers = new[] { (nat, (ushort)40002), (forwarded, (ushort)40003) };
        a.Deliver(nat.TakeOutput());
        a.Deliver(forwarded.TakeOutput());
        using var natHost = await natAccept;
        using var forwardHost = await forwardAccept;
        await PumpUntilAsync(a, peers, () => natHost.Available >= 3 && forwardHost.Available >= 3);

        await MigrateAsync(a, b);
        Assert.Equal(0, a.Count);
        Assert.Equal(1, b.Count);
        Assert.Equal(1, a.Gateway.Counters.FlowsMovedOut);
        Assert.Equal(1, b.Gateway.Counters.FlowsMovedIn);
        Assert.Equal(1, a.Gateway.Counters.MigrationResets(FlowResetReason.HostState));

        // The guest gets its RST from the target, the forward's host peer its own from the source.
        await PumpUntilAsync(b, peers, () => forwarded.GotReset);
        Assert.False(nat.GotReset, nat.Describe());
        var reset = Assert.Throws<SocketException>(() => forwardHost.Send(new byte[] { 1 }));
        Assert.Equal(SocketError.ConnectionReset, reset.SocketErrorCode);

        // The connection that moved still works.
        await natHost.SendAsync(new byte[] { 42, 43 }, SocketFlags.None, cancellationToken);
        await PumpUntilAsync(b, peers, () => nat.Received.Length == 2);
        Assert.Equal(new byte[] { 42, 43 }, nat.Received);
    }

    /// <summary>An IPv4 address of this host outside 127.0.0.0/8 (a destination the gateway does not treat as host loopback).</summary>
    private static IPAddress HostAddress()
    {
        var address = System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Where(i => i.OperationalStatus == System.Net.NetworkInformation.OperationalStatus.Up)
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a) && !new GatewayOptions().Network.Contains(Ip.ToUInt(a)));
        if (address is null)
        {
            HostRequirements.Unmet("the host has no IPv4 address outside 127.0.0.0/8 and 10.0.2.0/24");
        }

        return address!;
    }

    private static Socket ListenOnLoopback(out ushort port)
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        port = (ushort)((IPEndPoint)listener.LocalEndPoint!).Port;
        return listener;
    }

    private static string Counters(Side side) => string.Join(", ", side.Gateway.Counters.Snapshot().Select(c => $"{c.Key} {c.Value}")) + " log: " + string.Join(" | ", side.Log.Lines);

    private static async Task PumpUntilAsync(Side side, TestTcpPeer peer, Func<bool> done)
    {
        var frames = new List<byte[]>();
        for (var i = 0; i < 5000 && !done(); i++)
        {
            frames.Clear();
            side.Receiver.DrainTo(frames);
            foreach (var frame in frames)
            {
                peer.OnFrame(frame, 0);
            }

            peer.Read(64 * 1024);
            peer.TrySend(0);
            side.Deliver(peer.TakeOutput());
            await Task.Delay(2, TestContext.Current.CancellationToken);
        }

        Assert.True(done(), $"{peer.Describe()}; {side.Describe()}");
    }

    /// <summary>As above for several guest connections, each frame to the peer whose port it is for.</summary>
    private static async Task PumpUntilAsync(Side side, (TestTcpPeer Peer, ushort Port)[] peers, Func<bool> done)
    {
        var frames = new List<byte[]>();
        for (var i = 0; i < 5000 && !done(); i++)
        {
            frames.Clear();
            side.Receiver.DrainTo(frames);
            foreach (var frame in frames)
            {
                var port = ParseTcpAny(frame).Header.DestinationPort;
                Array.Find(peers, p => p.Port == port).Peer.OnFrame(frame, 0);
            }

            foreach (var (peer, _) in peers)
            {
                peer.Read(64 * 1024);
                peer.TrySend(0);
                side.Deliver(peer.TakeOutput());
            }

            await Task.Delay(2, TestContext.Current.CancellationToken);
        }

        Assert.True(done(), $"{string.Join("; ", peers.Select(p => p.Peer.Describe()))}; {side.Describe()}; {Counters(side)}");
    }

    /// <summary>The source's and the target's steps, in the order the control socket runs them.</summary>
    private static async Task MigrateAsync(Side source, Side target)
    {
        var from = new GatewayFlowSection(() => source.Gateway, NullLogger.Instance);
        var to = new GatewayFlowSection(() => target.Gateway, NullLogger.Instance);
        try
        {
            await from.FreezeAsync(TestContext.Current.CancellationToken);
            var writer = new StateSectionWriter();
            from.Write(writer);
            var apply = to.Read(new StateSectionReader(to.Name, writer.Written.ToArray()));
            from.Release(to.TakeRefusals());
            apply();
            from.Complete();
            to.Activate();
            Assert.True(from.LastResult!["tcp"] == 1, $"{from.LastResult["tcp"]} moved; source {Counters(source)}; target {Counters(target)}");
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }

    private static async Task WriteSlowlyAsync(Task<Socket> connected, byte[] data, CancellationToken cancellationToken)
    {
        var socket = await connected;
        for (var at = 0; at < data.Length; at += 32 * 1024)
        {
            await socket.SendAsync(data.AsMemory(at, Math.Min(32 * 1024, data.Length - at)), SocketFlags.None, cancellationToken);
            await Task.Delay(1, cancellationToken);
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    /// <summary>One gateway with its guest-side receiver and flush loop.</summary>
    private sealed class Side : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _flush;

        public Side(GatewayOptions options, TimeProvider time, bool hold)
        {
            Gateway = new Gateway(options, new FramePool(), time, Log);
            if (hold)
            {
                Gateway.Hold();
            }

            Gateway.Attach(Receiver, new WireCounters(), _stop.Token);
            _flush = Gateway.FlushLoopAsync(_stop.Token);
        }

        public Gateway Gateway { get; }

        public LineLogger Log { get; } = new();

        public BoundedGuestReceiver Receiver { get; } = new(64);

        public int Count
        {
            get
            {
                lock (Gateway.Sync)
                {
                    return Gateway.Tcp.Count;
                }
            }
        }

        public string Describe()
        {
            lock (Gateway.Sync)
            {
                return Gateway.Tcp.Describe();
            }
        }

        public void Deliver(List<byte[]> frames)
        {
            if (frames.Count == 0)
            {
                return;
            }

            lock (Gateway.Sync)
            {
                if (Gateway.Frozen)
                {
                    return;
                }

                foreach (var frame in frames)
                {
                    Gateway.OnGuestFrame(frame);
                }

                Gateway.EndOfBatch();
            }
        }

        public void OnTimer()
        {
            lock (Gateway.Sync)
            {
                Gateway.OnTimer();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            lock (Gateway.Sync)
            {
                Gateway.Shutdown();
            }

            try
            {
                await _flush;
            }
            catch (OperationCanceledException)
            {
            }

            _stop.Dispose();
        }
    }
}

/// <summary>Keeps every log line, for failure messages.</summary>
internal sealed class LineLogger : Microsoft.Extensions.Logging.ILogger
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IEnumerable<string> Lines => _lines;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _lines.Enqueue(formatter(state, exception));
}
