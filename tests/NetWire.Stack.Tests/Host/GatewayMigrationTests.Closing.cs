using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Net;
using NetWire.Stack.Migration;
using NetWire.Stack.Tcp;
using NetWire.Stack.Tests.Simulation;
using NetWire.Testing;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// Connections that are closing when they move (docs/migration.md, "Gateway flows"): each side
/// half-closed, both closed with bytes still unread, a FIN the host's kernel has not had
/// acknowledged (the host peer's ACKs dropped by a rule of the test's own), a simultaneous close
/// (CLOSING: the rule drops the socket's FIN instead), and TIME-WAIT towards the guest with the
/// guest's bytes not yet written to a host that does not read, also outlived on the clock. The
/// migration starts when the source's connection and its host socket's kernel state say the case
/// is reached; every byte then arrives once both ways, each side sees its FIN, nobody a RST.
/// </summary>
public sealed partial class GatewayMigrationTests
{
    /// <summary>The host peer has shut its side and its FIN waits in the host socket behind bytes the gateway has not read (CLOSE_WAIT); the guest goes on sending.</summary>
    [Fact]
    public Task HostClosedFirst_FinUnreadInTheKernel_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 1 << 20,
        HostBytes = 100_000,
        GuestReadsBefore = false,
        Ready = (source, _, _) => source.Contains("kernel CloseWait", StringComparison.Ordinal) && source.Contains("host-eof False", StringComparison.Ordinal),
    });

    /// <summary>The gateway read the host's EOF and sent the guest its FIN, which the guest has not acknowledged when the connection moves.</summary>
    [Fact]
    public Task HostClosedFirst_FinToTheGuestUnacknowledged_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 1 << 20,
        HostBytes = 10_000,
        Ready = (source, _, _) => source.Contains("fin True/False", StringComparison.Ordinal) && source.Contains("kernel CloseWait", StringComparison.Ordinal),
    });

    /// <summary>The guest has closed its side (the host socket in FIN_WAIT2) while the host goes on sending.</summary>
    [Fact]
    public Task GuestClosedFirst_HostStillSending_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 10_000,
        HostBytes = 1 << 20,
        HostSlowly = true,
        Ready = (source, peer, _) => peer.Received.Length > 100_000 && source.Contains("kernel FinWait2", StringComparison.Ordinal),
    });

    /// <summary>
    /// Both sides closed and the host socket done with (CLOSE: our FIN acknowledged, the peer's in),
    /// with bytes the gateway has not read: they move as the host stream's tail, without a socket.
    /// </summary>
    [Fact]
    public Task BothClosed_BytesUnread_MoveWithoutASocket() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 10_000,
        HostBytes = 100_000,
        GuestReadsBefore = false,
        Ready = (source, _, _) => source.Contains("kernel Close,", StringComparison.Ordinal) && source.Contains("host-eof False", StringComparison.Ordinal),
        Moved = target => Assert.Contains("host tail", target, StringComparison.Ordinal),
    });

    /// <summary>
    /// The host closed first, with bytes the gateway has not read, and the gateway's FIN after it is
    /// not acknowledged (LAST_ACK): the target sends the FIN again. (Once the host's EOF is read the
    /// gateway closes such a socket itself, and its kernel finishes the close.)
    /// </summary>
    [Fact]
    public Task HostClosedFirst_OurFinUnacknowledged_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 10_000,
        HostBytes = 100_000,
        HoldGuestFin = true,
        GuestReadsBefore = false,
        DropHostSegments = (source, _, host) => host.Count == 10_000 && source.Contains("kernel CloseWait", StringComparison.Ordinal) && source.Contains("host-eof False", StringComparison.Ordinal),
        Ready = (source, _, _) => source.Contains("kernel LastAck", StringComparison.Ordinal),
    });

    /// <summary>The guest closed first and the gateway's FIN to the host is not acknowledged (FIN_WAIT1): the host writes its stream after the move.</summary>
    [Fact]
    public Task GuestClosedFirst_OurFinUnacknowledged_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 10_000,
        HostBytes = 10_000,
        HoldGuestFin = true,
        HostWritesAfter = true,
        DropHostSegments = (source, _, host) => host.Count == 10_000 && source.Contains("kernel Established", StringComparison.Ordinal),
        Ready = (source, _, _) => source.Contains("kernel FinWait1", StringComparison.Ordinal),
    });

    /// <summary>
    /// The gateway is in TIME-WAIT towards the guest (both FINs acknowledged there) while the host,
    /// which does not read, has not taken the guest's last bytes: the host socket moves with them
    /// (they were lost with the socket's close before), and the host reads every byte and the EOF.
    /// </summary>
    [Fact]
    public Task TimeWait_GuestBytesNotYetWritten_ReachTheHostAfterTheMove() => RunClosingAsync(TimeWaitCase);

    /// <summary>
    /// Simultaneous close (CLOSING): the guest's FIN makes the gateway shut its host socket, whose
    /// FIN the test's rule drops on its way to the host peer; the peer then closes too, so the
    /// socket has sent its FIN, unacknowledged, and received the peer's (the peer, which never saw
    /// ours, is in FIN_WAIT1). The gateway has not read the host's last bytes. The target's socket
    /// sends the FIN again: the host reads every byte and the EOF, the guest every byte and its FIN.
    /// </summary>
    [Fact]
    public Task BothClosedAtOnce_OurFinUnacknowledged_Moves() => RunClosingAsync(new ClosingCase
    {
        GuestBytes = 10_000,
        HostBytes = 100_000,
        HoldGuestFin = true,
        GuestReadsBefore = false,
        DropTowardsHost = true,
        HostShutsDownWhen = (source, _, _) => source.Contains("kernel FinWait1", StringComparison.Ordinal),

        // The host's bytes are all in the gateway's socket and acknowledged, so the rule that drops
        // the socket's segments (its ACKs too) holds up nothing but the FIN.
        DropHostSegments = (source, _, host) => host.Count == 10_000 && host.Wrote && host.Unacked == 0 && source.Contains("kernel Established", StringComparison.Ordinal),
        Ready = (source, _, host) => source.Contains("kernel Closing", StringComparison.Ordinal) && source.Contains("host-eof False", StringComparison.Ordinal) && host.KernelState == TcpKernelState.FinWait1,
    });

    /// <summary>
    /// TIME-WAIT towards the guest outlived while the guest's bytes wait for a host that does not
    /// read: the clock passes the TIME-WAIT time four times over and the connection stays, with its
    /// bytes and its socket; once the host reads, it gets every byte and the EOF, and only then
    /// does the connection leave the table.
    /// </summary>
    [Fact]
    public Task TimeWait_OutlivedWhileGuestBytesWait_EndsOnlyOnceTheyAndTheFinAreWritten() => RunClosingAsync(TimeWaitCase with
    {
        Move = false,
        OutliveTimeWait = true,
    });

    /// <summary>
    /// As above, then the connection moves with no TIME-WAIT time left, and the target's clock
    /// passes it again before the host reads: the host still gets every byte and the EOF.
    /// </summary>
    [Fact]
    public Task TimeWait_OutlivedWhileGuestBytesWait_MovesAndTheBytesReachTheHost() => RunClosingAsync(TimeWaitCase with
    {
        OutliveTimeWait = true,
    });

    /// <summary>
    /// A full table does not evict a connection in TIME-WAIT whose guest bytes wait for the host
    /// (the eviction would close its socket without them): the guest's new connection is refused
    /// instead, and the waiting bytes and the EOF still reach the host.
    /// </summary>
    [Fact]
    public Task TimeWait_WhileGuestBytesWait_IsNotEvictedForANewConnection() => RunClosingAsync(TimeWaitCase with
    {
        Move = false,
        MaxTcpConnections = 1,
        AtTheCase = async (source, port, frames) =>
        {
            var other = new TestTcpPeer([1, 2, 3], 4096, 7, 6000);
            other.Connect(IpAddr.FromIpv4(GuestIp), 40011, IpAddr.FromIpv4(GatewayIp), port, 0);
            source.Deliver(other.TakeOutput());
            var drained = new List<byte[]>();
            for (var i = 0; i < 2000 && !other.GotReset; i++)
            {
                drained.Clear();
                source.Receiver.DrainTo(drained);
                foreach (var frame in drained)
                {
                    if (ParseTcpAny(frame).Header.DestinationPort == 40011)
                    {
                        other.OnFrame(frame, 0);
                    }
                    else
                    {
                        frames.Add(frame);
                    }
                }

                await Task.Delay(2, TestContext.Current.CancellationToken);
            }

            var state = source.Describe();
            Assert.True(
                other.GotReset && source.Count == 1 && state.StartsWith("TimeWait", StringComparison.Ordinal) && !state.Contains("to-host 0 ", StringComparison.Ordinal),
                $"the new connection was not refused, or the waiting one did not stay: {other.Describe()}; {state}; {Counters(source)}");
        },
    });

    /// <summary>TIME-WAIT towards the guest with the guest's last bytes in the ring towards a host that reads only after the move.</summary>
    private static ClosingCase TimeWaitCase => new()
    {
        GuestBytes = 16 << 20,
        HostBytes = 10,
        HostReceiveBuffer = 4096,
        HostReadsAfter = true,
        HostWritesAfter = true,
        Prepare = (source, peer) =>
        {
            // The ring towards the host is full and the kernel takes no more: the guest ends its stream here.
            if (peer.Sent > 70_000 && peer.Describe().Contains("(window 0,", StringComparison.Ordinal) && peer.Idle && !peer.Finished)
            {
                peer.Finish();
                return true;
            }

            return false;
        },
        Ready = (source, _, _) => source.StartsWith("TimeWait", StringComparison.Ordinal) && !source.Contains("to-host 0 ", StringComparison.Ordinal),
        Moved = target => Assert.StartsWith("TimeWait", target, StringComparison.Ordinal),
    };

    private async Task RunClosingAsync(ClosingCase c)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nft");
        var cancellationToken = TestContext.Current.CancellationToken;
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (c.HostReceiveBuffer > 0)
        {
            listener.ReceiveBufferSize = c.HostReceiveBuffer;
        }

        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(4);
        var port = (ushort)((IPEndPoint)listener.LocalEndPoint!).Port;
        var accept = listener.AcceptAsync(cancellationToken).AsTask();

        var random = new Random(11);
        var guestData = new byte[c.GuestBytes];
        var hostData = new byte[c.HostBytes];
        random.NextBytes(guestData);
        random.NextBytes(hostData);
        var options = new GatewayOptions { AllowHostLoopback = true, TcpBufferBytes = c.BufferBytes, MaxTcpConnections = c.MaxTcpConnections };
        var time = new FakeTimeProvider();
        await using var a = new Side(options, time, hold: false);
        await using var b = new Side(options, time, hold: true);
        var peer = new TestTcpPeer(guestData, 32 * 1024, 7, 5000) { HoldFin = c.HoldGuestFin };
        peer.Connect(IpAddr.FromIpv4(GuestIp), 40010, IpAddr.FromIpv4(GatewayIp), port, 0);
        a.Deliver(peer.TakeOutput());
        using var host = await accept;
        var reader = new HostReader(host);
        if (!c.HostReadsAfter)
        {
            reader.Start(cancellationToken);
        }

        var hostSent = c.HostWritesAfter ? null : WriteHostAsync(host, hostData, c.HostSlowly, shutdown: c.HostShutsDownWhen is null, cancellationToken);
        var hostShut = c.HostShutsDownWhen is null;
        await using var drop = new DropRule();

        // Before the move: time stands still (no retransmission), the guest reads only when the case says so.
        var frames = new List<byte[]>();
        string source;
        var prepared = c.Prepare is null;
        for (var step = 0; ; step++)
        {
            frames.Clear();
            a.Receiver.DrainTo(frames);
            source = a.Describe();
            reader.Wrote = hostSent is { IsCompletedSuccessfully: true };
            var running = source.StartsWith("Established", StringComparison.Ordinal) || source.StartsWith("TimeWait", StringComparison.Ordinal);
            if (running && prepared && hostShut && drop.Installed == (c.DropHostSegments is not null) && c.Ready(source, peer, reader))
            {
                break;
            }

            Assert.True(step < 20_000, $"the case was not reached: {source}; {peer.Describe()}; host read {reader.Count}, kernel {reader.KernelState}; {Counters(a)}");
            if (running && c.DropHostSegments is { } dropWhen && !drop.Installed && dropWhen(source, peer, reader))
            {
                var gatewayPort = ((IPEndPoint)host.RemoteEndPoint!).Port;
                await (c.DropTowardsHost ? drop.InstallAsync(gatewayPort, port) : drop.InstallAsync(port, gatewayPort));
                peer.HoldFin = false;
            }

            if (running && !hostShut && reader.Wrote && c.HostShutsDownWhen!(source, peer, reader))
            {
                host.Shutdown(SocketShutdown.Send);
                hostShut = true;
            }

            if (running && !prepared)
            {
                prepared = c.Prepare!(source, peer);
                if (prepared && c.HostWritesAfter)
                {
                    hostSent = WriteHostAsync(host, hostData, slowly: false, shutdown: true, cancellationToken);
                    c = c with { HostWritesAfter = false };
                }
            }

            foreach (var frame in frames)
            {
                peer.OnFrame(frame, 0);
            }

            Assert.False(peer.GotReset, $"the guest got a RST before the move; {peer.Describe()}; {source}");
            if (c.GuestReadsBefore)
            {
                peer.Read(64 * 1024);
            }

            peer.TrySend(0);
            a.Deliver(peer.TakeOutput());
            await Task.Delay(1, cancellationToken);
        }

        if (c.OutliveTimeWait)
        {
            // docs/migration.md, "Closing connections": TIME-WAIT does not end while the guest's bytes wait for the host.
            OutliveTimeWait(a, time, options.TimeWait);
            var outlived = a.Describe();
            Assert.True(
                a.Count == 1 && outlived.StartsWith("TimeWait", StringComparison.Ordinal) && !outlived.Contains("to-host 0 ", StringComparison.Ordinal) && outlived.Contains(" kernel ", StringComparison.Ordinal),
                $"the connection did not outlive its TIME-WAIT with the guest's bytes and its socket: {outlived}; {Counters(a)}");
        }

        if (c.AtTheCase is { } atTheCase)
        {
            await atTheCase(a, port, frames);
        }

        var end = a;
        if (c.Move)
        {
            await MigrateAsync(a, b);
            Assert.Equal(0, a.Count);
            Assert.True(b.Count == 1, $"the target has {b.Count} connections; {Counters(a)}; {Counters(b)}");
            c.Moved?.Invoke(b.Describe());
            end = b;
        }

        // The frames the source had sent are still on their way to the guest.
        foreach (var frame in frames)
        {
            peer.OnFrame(frame, 0);
        }

        await drop.DisposeAsync();
        if (c.OutliveTimeWait && c.Move)
        {
            // The moved connection has no TIME-WAIT time left; the target's socket may or may not
            // have taken the ring's bytes by now, and the host must get them either way.
            OutliveTimeWait(b, time, options.TimeWait);
        }

        if (c.HostReadsAfter)
        {
            if (c.HostReceiveBuffer > 0)
            {
                // The small buffer only kept the guest's bytes waiting. Left at 4 KiB, the 3 MB the
                // kernel queued for it took up to 2 minutes on a busy machine (ss showed the sender
                // retransmitting into the 4 KiB window with a 3 s RTO).
                host.ReceiveBufferSize = 1 << 20;
            }

            reader.Start(cancellationToken);
        }

        hostSent ??= WriteHostAsync(host, hostData, c.HostSlowly, shutdown: true, cancellationToken);
        await PumpToEndAsync(end, peer, reader.Done, time);

        var fromHost = await reader.Done;
        await hostSent;
        Assert.True(hostData.AsSpan().SequenceEqual(peer.Received), $"host -> guest bytes differ: {peer.Received.Length} of {hostData.Length}");
        Assert.True(guestData.AsSpan(0, (int)peer.Sent - 1).SequenceEqual(fromHost), $"guest -> host bytes differ: {fromHost.Length} of {peer.Sent - 1}");

        // A RST after the EOF would leave its error on the host peer's socket.
        Assert.Equal(0, (int)host.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error)!);
        Assert.Equal(c.Move ? 1 : 0, a.Gateway.Counters.FlowsMovedOut);
        Assert.Equal(c.Move ? 1 : 0, b.Gateway.Counters.FlowsMovedIn);
        Assert.All(Enum.GetValues<FlowResetReason>(), reason => Assert.Equal(0, a.Gateway.Counters.MigrationResets(reason) + b.Gateway.Counters.MigrationResets(reason)));
    }

    /// <summary>Pumps the target until both streams ended and the connection left its table, advancing the fake clock whenever nothing moves.</summary>
    private static async Task PumpToEndAsync(Side side, TestTcpPeer peer, Task hostDone, FakeTimeProvider time)
    {
        var frames = new List<byte[]>();
        long now = 0;
        for (var step = 0; ; step++)
        {
            Assert.True(step < 200_000, $"no end: {peer.Describe()}; {side.Describe()}; host {(hostDone.IsCompleted ? hostDone.Status.ToString() : "no EOF")}; {Counters(side)}");
            frames.Clear();
            side.Receiver.DrainTo(frames);
            var moved = frames.Count > 0;
            foreach (var frame in frames)
            {
                peer.OnFrame(frame, now);
            }

            Assert.False(peer.GotReset, $"the guest got a RST; {peer.Describe()}; {side.Describe()}; {Counters(side)}");
            peer.Read(64 * 1024);
            peer.TrySend(now);
            var output = peer.TakeOutput();
            moved |= output.Count > 0;
            side.Deliver(output);
            if (peer.GotFin && peer.AllAcked && hostDone.IsCompleted && side.Count == 0)
            {
                return;
            }

            if (!moved)
            {
                await Task.WhenAny(side.Receiver.WhenFrameAsync(), Task.Delay(1, TestContext.Current.CancellationToken));
                if (!side.Receiver.WhenFrameAsync().IsCompleted)
                {
                    time.Advance(TimeSpan.FromMilliseconds(StepMs));
                    now += StepMs;
                    side.OnTimer();
                    peer.OnTimer(now);
                }
            }
        }
    }

    /// <summary>Passes <paramref name="timeWait"/> four times over on the clock, ticking <paramref name="side"/>'s timers each time.</summary>
    private static void OutliveTimeWait(Side side, FakeTimeProvider time, TimeSpan timeWait)
    {
        for (var i = 0; i < 4; i++)
        {
            time.Advance(timeWait);
            side.OnTimer();
        }
    }

    private static async Task WriteHostAsync(Socket socket, byte[] data, bool slowly, bool shutdown, CancellationToken cancellationToken)
    {
        var piece = slowly ? 16 * 1024 : data.Length;
        for (var at = 0; at < data.Length; at += piece)
        {
            await socket.SendAsync(data.AsMemory(at, Math.Min(piece, data.Length - at)), SocketFlags.None, cancellationToken);
            if (slowly)
            {
                await Task.Delay(1, cancellationToken);
            }
        }

        if (shutdown)
        {
            socket.Shutdown(SocketShutdown.Send);
        }
    }

    /// <summary>One closing case: the streams, who reads and writes when, and the source's state the move waits for.</summary>
    private sealed record ClosingCase
    {
        public int GuestBytes { get; init; }

        public int HostBytes { get; init; }

        public int BufferBytes { get; init; } = 64 * 1024;

        /// <summary>SO_RCVBUF of the host peer's socket (0: the kernel's default).</summary>
        public int HostReceiveBuffer { get; init; }

        public bool GuestReadsBefore { get; init; } = true;

        public bool HoldGuestFin { get; init; }

        public bool HostSlowly { get; init; }

        /// <summary>The host peer reads only after the move.</summary>
        public bool HostReadsAfter { get; init; }

        /// <summary>The host peer writes its stream (and shuts down) only once prepared, or after the move.</summary>
        public bool HostWritesAfter { get; init; }

        /// <summary>The host peer writes its stream at once but shuts its side down only when this says so, before the move.</summary>
        public Func<string, TestTcpPeer, HostReader, bool>? HostShutsDownWhen { get; init; }

        /// <summary>The test's rule drops the gateway socket's segments to the host peer (its FIN, its ACKs) instead of the peer's.</summary>
        public bool DropTowardsHost { get; init; }

        /// <summary>The connection moves (else it stays and ends on the source).</summary>
        public bool Move { get; init; } = true;

        /// <summary>Once the case is reached, the clock passes the TIME-WAIT time on the source, and on the target after the move.</summary>
        public bool OutliveTimeWait { get; init; }

        public int MaxTcpConnections { get; init; } = new GatewayOptions().MaxTcpConnections;

        /// <summary>Runs on the source once the case is reached, before the move (the host peer's port; frames it drains for the guest go to the list).</summary>
        public Func<Side, ushort, List<byte[]>, Task>? AtTheCase { get; init; }

        /// <summary>Runs each step until it returns true; the move waits for it.</summary>
        public Func<string, TestTcpPeer, bool>? Prepare { get; init; }

        /// <summary>When to start dropping segments between the host peer and the gateway's socket (the peer's, or with <see cref="DropTowardsHost"/> the socket's), and let the guest's FIN go.</summary>
        public Func<string, TestTcpPeer, HostReader, bool>? DropHostSegments { get; init; }

        public required Func<string, TestTcpPeer, HostReader, bool> Ready { get; init; }

        /// <summary>Checks the target's connection right after the move.</summary>
        public Action<string>? Moved { get; init; }
    }

    /// <summary>Reads the host peer's socket to its EOF once started, counting as it goes; says what the socket's kernel holds.</summary>
    private sealed class HostReader(Socket socket)
    {
        private readonly MemoryStream _read = new();
        private readonly TaskCompletionSource<byte[]> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _count;

        public int Count => Volatile.Read(ref _count);

        /// <summary>The host peer has handed its whole stream to its socket (the runner sets it each step).</summary>
        public bool Wrote { get; set; }

        /// <summary>The host peer's socket's TCP state (TCP_INFO).</summary>
        public TcpKernelState? KernelState => TcpRepair.KernelState(socket);

        /// <summary>Segments the host peer's socket has sent and not had acknowledged (TCP_INFO tcpi_unacked).</summary>
        public int Unacked
        {
            get
            {
                Span<byte> info = stackalloc byte[28];
                var length = socket.GetRawSocketOption(6, 11, info);
                Assert.True(length >= 28, $"TCP_INFO of {length} bytes");
                return BitConverter.ToInt32(info[24..]);
            }
        }

        public Task<byte[]> Done => _done.Task;

        public void Start(CancellationToken cancellationToken) => _ = RunAsync(cancellationToken);

        private async Task RunAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                    if (n == 0)
                    {
                        _done.SetResult(_read.ToArray());
                        return;
                    }

                    _read.Write(buffer, 0, n);
                    Interlocked.Add(ref _count, n);
                }
            }
            catch (Exception ex)
            {
                _done.SetException(ex);
            }
        }
    }

    /// <summary>An nftables table of the test's own that drops TCP from one port to the other on loopback (input, before the network lock's chain).</summary>
    private sealed class DropRule : IAsyncDisposable
    {
        private readonly string _table = $"nwtest_drop_{Environment.ProcessId}";

        public bool Installed { get; private set; }

        public async Task InstallAsync(int sourcePort, int destinationPort)
        {
            var script = $"add table inet {_table}\nadd chain inet {_table} input {{ type filter hook input priority -400; }}\n" +
                $"add rule inet {_table} input tcp sport {sourcePort} tcp dport {destinationPort} drop\n";
            (await ProcessRunner.RunAsync("nft", ["-f", "-"], stdin: script)).EnsureSuccess();
            Installed = true;
        }

        public async ValueTask DisposeAsync()
        {
            if (Installed)
            {
                Installed = false;
                (await ProcessRunner.RunAsync("nft", ["delete", "table", "inet", _table])).EnsureSuccess();
            }
        }
    }
}
