using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests.Simulation;

/// <summary>
/// The gateway's TCP endpoint against a test TCP peer over a link that drops, duplicates,
/// reorders and corrupts frames in both directions, with a real loopback socket on the host
/// side. Each seed picks the fault rates, the amounts, the buffer sizes, window scaling or
/// not, and initial sequence numbers near the wrap; the byte streams must arrive intact both
/// ways, the connection must close cleanly (FIN both ways, then out of the table after
/// TIME-WAIT) and every corrupted frame must be counted as a bad checksum. The IPv6 runs (fewer
/// seeds) put the same endpoint behind the IPv6 layer, with a host socket on ::1.
/// </summary>
/// <remarks>
/// How this works: one loop moves frames. Frames the gateway sends go to a bounded receiver
/// (the guest end, which says "full" so the gateway must wait), then through one injector to
/// the peer; the peer's frames go through another injector into the gateway, a batch at a time
/// as the pump does. When neither side has anything to say, held frames are released; when
/// there are none, the loop gives the host sockets a moment and then moves the fake clock on by
/// 10 ms and runs both sides' timers. Time therefore passes only when the link is quiet, so
/// retransmissions come from the timers, never from wall-clock luck. The host sockets are real
/// and run on their own; the test waits for what they read, never for a time.
/// </remarks>
public sealed class TcpLossSimulationTests
{
    private const int Seeds = 20;
    private const long StepMs = 10;

    // Simulated time after which a run that has not finished is a failure (a stuck connection).
    private const long GiveUpMs = 3 * 60 * 1000;

    private const int Ipv6Seeds = 8;

    public static TheoryData<int> SeedData()
    {
        var data = new TheoryData<int>();
        for (var seed = 1; seed <= Seeds; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    public static TheoryData<int> Ipv6SeedData()
    {
        var data = new TheoryData<int>();
        for (var seed = 101; seed <= 100 + Ipv6Seeds; seed++)
        {
            data.Add(seed);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SeedData))]
    public Task GuestConnectsToHost_StreamsArriveIntactBothWays(int seed) => GuestConnectsAsync(seed, ipv6: false);

    [Theory]
    [MemberData(nameof(Ipv6SeedData))]
    public Task GuestConnectsToHostOverIpv6_StreamsArriveIntactBothWays(int seed) => GuestConnectsAsync(seed, ipv6: true);

    [Theory]
    [MemberData(nameof(SeedData))]
    public Task HostForwardIntoGuest_StreamsArriveIntactBothWays(int seed) => HostForwardAsync(seed, ipv6: false);

    [Theory]
    [MemberData(nameof(Ipv6SeedData))]
    public Task HostForwardIntoGuestOverIpv6_StreamsArriveIntactBothWays(int seed) => HostForwardAsync(seed, ipv6: true);

    private static async Task GuestConnectsAsync(int seed, bool ipv6)
    {
        using var listener = new Socket(ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ipv6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, 0));
        listener.Listen(4);
        var port = (ushort)((IPEndPoint)listener.LocalEndPoint!).Port;
        var accept = listener.AcceptAsync(TestContext.Current.CancellationToken).AsTask();

        await RunAsync(seed, (peer, gateway, now) =>
        {
            peer.Connect(ipv6 ? GuestIp6 : IpAddr.FromIpv4(GuestIp), 40000, ipv6 ? GatewayIp6 : IpAddr.FromIpv4(GatewayIp), port, now);
            return accept;
        });
    }

    private static async Task HostForwardAsync(int seed, bool ipv6)
    {
        var family = ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
        using var listener = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(ipv6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, 0));
        listener.Listen(4);
        var client = new Socket(family, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await client.ConnectAsync(listener.LocalEndPoint!, TestContext.Current.CancellationToken);
        var accepted = await listener.AcceptAsync(TestContext.Current.CancellationToken);

        await RunAsync(seed, (peer, gateway, now) =>
        {
            peer.Listen(ipv6 ? GuestIp6 : IpAddr.FromIpv4(GuestIp), 8080);
            lock (gateway.Sync)
            {
                gateway.SetGuestMac(GuestMac);
                gateway.SetGuestIp(GuestIp);
                gateway.GuestIpv6.SetFirst(GuestIp6);
                gateway.Tcp.OpenToGuest(accepted, 8080, ipv6);
            }

            return Task.FromResult(client);
        });
    }

    private static async Task RunAsync(int seed, Func<TestTcpPeer, Gateway, long, Task<Socket>> open)
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var random = new Random(seed);
        var rates = new FaultRates(
            Drop: 0.02 + (random.NextDouble() * 0.08),
            Duplicate: 0.01 + (random.NextDouble() * 0.04),
            Reorder: 0.03 + (random.NextDouble() * 0.12),
            Corrupt: 0.01);
        var guestData = RandomBytes(random, random.Next(64 * 1024, 768 * 1024));
        var hostData = RandomBytes(random, random.Next(64 * 1024, 768 * 1024));
        var receiveCapacity = random.Next(16 * 1024, 192 * 1024);
        var offeredShift = random.Next(4) == 0 ? -1 : random.Next(0, 8);
        var iss = random.Next(2) == 0 ? uint.MaxValue - (uint)random.Next(0, 200_000) : (uint)random.NextInt64(0, uint.MaxValue);
        var options = new GatewayOptions
        {
            AllowHostLoopback = true,
            TcpBufferBytes = random.Next(2) == 0 ? 64 * 1024 : 256 * 1024,
        };

        var time = new FakeTimeProvider();
        var nowMs = 0L;
        var receiver = new BoundedGuestReceiver(random.Next(4, 64));
        var gateway = new Gateway(options, new FramePool(), time, NullLogger.Instance);
        var toGuest = new FaultInjector(new Random(random.Next()), rates with { Corrupt = 0 });
        var toGateway = new FaultInjector(new Random(random.Next()), rates);
        var peer = new TestTcpPeer(guestData, receiveCapacity, offeredShift, iss);
        var setting = $"seed {seed}: {rates}, guest {guestData.Length} B, host {hostData.Length} B, window {receiveCapacity} B shift {offeredShift}, " +
            $"gateway buffer {options.TcpBufferBytes}, guest queue, iss {iss}";

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        gateway.Attach(receiver, new WireCounters(), stop.Token);
        var flush = gateway.FlushLoopAsync(stop.Token);
        // The guest's SYN has to cross the simulated link before the host socket exists.
        var host = open(peer, gateway, nowMs);
        try
        {
            var hostReceived = HostSockets.ReadToEndAsync(host, cancellationToken);
            var hostSent = WriteAndShutdownAsync(host, hostData, cancellationToken);

            var arrived = new List<byte[]>();
            var passed = new List<byte[]>();
            for (var step = 0; ; step++)
            {
                Assert.True(step < 5_000_000, $"no completion after {step} steps; {setting}; {peer.Describe()}");
                var moved = false;
                arrived.Clear();
                passed.Clear();
                receiver.DrainTo(arrived);
                foreach (var frame in arrived)
                {
                    toGuest.Pass(frame, passed);
                }

                foreach (var frame in passed)
                {
                    peer.OnFrame(frame, nowMs);
                    moved = true;
                }

                Assert.False(peer.GotReset, $"the gateway reset the connection; {setting}; {peer.Describe()}");
                peer.Read(random.Next(3) == 0 ? 0 : random.Next(receiveCapacity));
                peer.TrySend(nowMs);
                moved |= Deliver(gateway, toGateway, peer.TakeOutput());

                if (peer.GotFin && peer.AllAcked && hostReceived.IsCompleted && TcpConnections(gateway) == 0)
                {
                    break;
                }

                if (moved)
                {
                    continue;
                }

                if (toGuest.HasHeld || toGateway.HasHeld)
                {
                    passed.Clear();
                    toGuest.ReleaseHeld(passed);
                    foreach (var frame in passed)
                    {
                        peer.OnFrame(frame, nowMs);
                    }

                    Deliver(gateway, toGateway, peer.TakeOutput(), release: true);
                    continue;
                }

                // Quiet: let the host sockets catch up, then let time pass.
                await Task.WhenAny(receiver.WhenFrameAsync(), Task.Delay(1, cancellationToken));
                if (receiver.CanRecvPacket && !receiver.WhenFrameAsync().IsCompleted)
                {
                    time.Advance(TimeSpan.FromMilliseconds(StepMs));
                    nowMs += StepMs;
                    lock (gateway.Sync)
                    {
                        gateway.OnTimer();
                    }

                    peer.OnTimer(nowMs);
                    Assert.True(nowMs < GiveUpMs, $"no completion after {nowMs} simulated ms; {setting}; {peer.Describe()}; host got {(hostReceived.IsCompleted ? "EOF" : "no EOF")}, gateway now {nowMs} ms: {DescribeTcp(gateway)}");
                }
            }

            // Frames still held on the link arrive late; corrupted ones among them must be counted too.
            Deliver(gateway, toGateway, [], release: true);
            Assert.Equal(hostData.Length, peer.Received.Length);
            Assert.True(hostData.AsSpan().SequenceEqual(peer.Received), $"host -> guest bytes differ; {setting}");
            var received = await hostReceived;
            Assert.Equal(guestData.Length, received.Length);
            Assert.True(guestData.AsSpan().SequenceEqual(received), $"guest -> host bytes differ; {setting}");
            await hostSent;
            Assert.Equal(0, receiver.Overruns);
            // A flipped bit in the data offset fails the length check before the checksum.
            Assert.Equal(toGateway.Corrupted, gateway.Counters.Drops(StackDrop.BadChecksum) + gateway.Counters.Drops(StackDrop.BadLength));
            Assert.Equal(1, gateway.Counters.TcpOpened);
        }
        finally
        {
            await stop.CancelAsync();
            lock (gateway.Sync)
            {
                gateway.Shutdown();
            }

            if (host.IsCompletedSuccessfully)
            {
                host.Result.Dispose();
            }
            try
            {
                await flush;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static bool Deliver(Gateway gateway, FaultInjector link, List<byte[]> frames, bool release = false)
    {
        var passed = new List<byte[]>();
        foreach (var frame in frames)
        {
            link.Pass(frame, passed);
        }

        if (release)
        {
            link.ReleaseHeld(passed);
        }

        if (passed.Count == 0)
        {
            return false;
        }

        lock (gateway.Sync)
        {
            foreach (var frame in passed)
            {
                gateway.OnGuestFrame(frame);
            }

            gateway.EndOfBatch();
        }

        return true;
    }

    private static string DescribeTcp(Gateway gateway)
    {
        lock (gateway.Sync)
        {
            return gateway.Tcp.Describe();
        }
    }

    private static int TcpConnections(Gateway gateway)
    {
        lock (gateway.Sync)
        {
            return gateway.Tcp.Count;
        }
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static async Task WriteAndShutdownAsync(Task<Socket> connected, byte[] data, CancellationToken cancellationToken)
    {
        var socket = await connected;
        var sent = 0;
        while (sent < data.Length)
        {
            sent += await socket.SendAsync(data.AsMemory(sent), SocketFlags.None, cancellationToken);
        }

        socket.Shutdown(SocketShutdown.Send);
    }
}
