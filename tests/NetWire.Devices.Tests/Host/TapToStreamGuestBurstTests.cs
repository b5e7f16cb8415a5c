using System.Buffers.Binary;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Qemu;
using NetWire.Devices.Tap;
using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// Frames from a real TAP to a stream guest go two ways: the TAP's reader sends bursts into the
/// guest socket itself while nothing is queued, and falls back to the queue and the send thread
/// while the socket is full or frames are queued (docs/architecture.md, "Devices"). A guest that
/// reads in spurts makes it switch back and forth; every frame NetWire took from the TAP must
/// arrive once and in order, and the kernel's drops account for the rest. With large frames a
/// burst read through io_uring does not fit the send buffer, and the frames after go through the
/// queue.
/// </summary>
[Trait("Category", "Host")]
public sealed class TapToStreamGuestBurstTests
{
    /// <param name="payload">UDP payload bytes: 18 (60-byte frames) or 30,000, where a burst fills the guest's send buffer and the frames after go through the queue.</param>
    /// <param name="mtu">The TAP's MTU in the namespace.</param>
    /// <param name="perRound">Datagrams per round, of 8.</param>
    /// <param name="ring">Bursts read through io_uring (where the kernel allows it), or one read(2) per frame.</param>
    [Theory]
    [InlineData(18, 1500, 5000, true)]
    [InlineData(30_000, 65_000, 500, true)]
    [InlineData(18, 1500, 5000, false)]
    [InlineData(30_000, 65_000, 500, false)]
    public async Task FramesFromTheTap_ToAGuestReadingInSpurts_ArriveOnceAndInOrder_ThroughBurstsAndTheQueue(int payload, int mtu, int perRound, bool ring)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("python3");
        const int Rounds = 8;
        var sent = Rounds * perRound;

        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var tap = $"nwo{Environment.ProcessId % 100000}{(payload < 1000 ? "a" : "b")}{(ring ? "r" : "s")}";
        await using var ns = await NetNamespace.CreateAsync();
        var pool = new FramePool();
        var guest = new QemuStreamEnd("guest", new UnixDomainSocketEndPoint(Path.Combine(dir, "g.sock")), connect: false, pool, 64, NullLogger.Instance);
        var host = new TapEnd("host", tap, pool, 64, NullLogger.Instance) { UseReadRing = ring };
        using var stop = new CancellationTokenSource();
        var run = new Link(guest, host, null, NullLogger.Instance).RunAsync(stop.Token);
        try
        {
            await guest.Ready.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(await EventuallyAsync(() => Directory.Exists($"/sys/class/net/{tap}")), $"TAP {tap} was not opened");

            // The open TAP moves into the namespace, where the kernel sends UDP datagrams out of it
            // to a neighbour that does not exist (no ARP: a static entry).
            (await ProcessRunner.RunAsync("ip", ["link", "set", tap, "netns", ns.Name])).EnsureSuccess();
            (await ns.ExecShellAsync(
                $"sysctl -qw net.ipv6.conf.{tap}.disable_ipv6=1 && ip link set {tap} mtu {mtu} && ip addr add 10.0.2.1/24 dev {tap} && ip link set {tap} up " +
                $"&& ip neigh add 10.0.2.99 lladdr 52:54:00:12:34:56 dev {tap}")).EnsureSuccess();

            using var client = await StreamClient.ConnectAsync(Path.Combine(dir, "g.sock"));
            Assert.True(await EventuallyAsync(() => guest.IsConnected), "the guest connection was not served");

            // Rounds of datagrams (a sequence number, then zeros) with pauses between, so bursts
            // start again after each fallback.
            var flood = ns.ExecAsync(
                ["python3", "-c",
                 "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nn=0\n" +
                 $"for r in range({Rounds}):\n  for i in range({perRound}):\n    s.sendto(n.to_bytes(4,'big')+bytes({payload - 4}),('10.0.2.99',9))\n    n+=1\n  time.sleep(0.2)\nprint(n)"],
                TimeSpan.FromSeconds(120));

            var received = await Task.Run(() => ReadInSpurts(client.Socket, flood, host));
            (await flood).EnsureSuccess();

            var txDropped = long.Parse((await ns.ExecAsync("cat", $"/sys/class/net/{tap}/statistics/tx_dropped")).EnsureSuccess().Stdout.Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Empty(received.Disorder);
            Assert.True(received.Sequence > 0, "no datagram arrived");

            // Every frame NetWire took from the TAP arrived, once; the kernel dropped the rest.
            Assert.Equal(host.Counters.RxFrames, received.Frames);
            Assert.Equal(received.Frames, guest.Counters.TxFrames);
            Assert.Equal(0, guest.Counters.TotalDrops);
            Assert.True(sent - received.Sequence <= txDropped, $"{sent} sent, {received.Sequence} arrived, {txDropped} dropped by the kernel");

            // Both ways were taken: bursts sent by the TAP's reader, a burst whose rest the send
            // thread finished for a full socket, and frames through the queue.
            Assert.True(guest.DirectFrames > 0, "no frame was sent in a burst");
            Assert.True(guest.DeferredBursts > 0, "the socket never refused the rest of a burst");
            Assert.True(guest.Counters.TxFrames - guest.DirectFrames > 0, "no frame went through the queue");
        }
        finally
        {
            await stop.CancelAsync();
            await run.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
            await guest.DisposeAsync();
            await host.DisposeAsync();
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Reads the guest socket in spurts while the flood runs (about 300 frames, then a pause long
    /// enough for NetWire's side of the socket to fill), then without pauses until every frame the
    /// TAP end took has arrived. Checks each datagram's sequence number as it comes.
    /// </summary>
    private static Received ReadInSpurts(Socket socket, Task flood, TapEnd host)
    {
        socket.ReceiveTimeout = 1000;
        var buffer = new byte[1 << 20];
        var have = 0;
        var result = new Received();
        var last = -1;
        var sincePause = 0;
        var idle = 0;
        while (true)
        {
            int n;
            try
            {
                n = socket.Receive(buffer, have, buffer.Length - have, SocketFlags.None);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                if ((flood.IsCompleted && result.Frames == host.Counters.RxFrames) || ++idle > 60)
                {
                    return result;
                }

                continue;
            }

            Assert.NotEqual(0, n);
            have += n;
            var start = 0;
            while (have - start >= 4)
            {
                var length = (int)BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(start));
                if (have - start < 4 + length)
                {
                    break;
                }

                var frame = buffer.AsSpan(start + 4, length);
                result.Frames++;
                sincePause++;

                // IPv4 (0x0800), UDP (17), to port 9: the flood's datagrams.
                if (length >= 46 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 17 && frame[36] == 0 && frame[37] == 9)
                {
                    var seq = BinaryPrimitives.ReadInt32BigEndian(frame[42..]);
                    if (seq <= last && result.Disorder.Count < 10)
                    {
                        result.Disorder.Add($"datagram {seq} after {last}");
                    }

                    last = Math.Max(last, seq);
                    result.Sequence++;
                }

                start += 4 + length;
            }

            buffer.AsSpan(start, have - start).CopyTo(buffer);
            have -= start;
            if (!flood.IsCompleted && sincePause >= 300)
            {
                Thread.Sleep(100);
                sincePause = 0;
            }
        }
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (var i = 0; i < 400 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        return condition();
    }

    private sealed class Received
    {
        /// <summary>Frames that arrived.</summary>
        public long Frames;

        /// <summary>Datagrams of the flood that arrived.</summary>
        public long Sequence;

        /// <summary>Datagrams that arrived out of order or twice (the first few).</summary>
        public List<string> Disorder { get; } = [];
    }
}
