using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Stack;
using NetWire.Testing;

namespace NetWire.Appliance.Tests.Host;

/// <summary>
/// A TAP end read by the gateway's poller (<see cref="TapEnd.InputLoop"/>, as <c>netwire run</c>
/// wires them) with the Linux stack of a namespace sending through the TAP: a receiver without room
/// is never handed a frame, the frames wait in the kernel's queue and arrive complete and in order
/// as room comes, a few at a time; a TAP deleted under the end ends it with a message naming the TAP.
/// </summary>
[Trait("Category", "Host")]
public sealed class TapInputLoopTests
{
    [Fact]
    public async Task ReceiverWithoutRoom_StopsTheReads_AndEveryFrameArrivesInOrderAsRoomComes()
    {
        const int Sent = 200;
        await using var ns = await NetNamespace.CreateAsync();
        var receiver = new GatedReceiver();
        await using var rig = await Rig.StartAsync(ns, "a", receiver);

        // Fewer datagrams than the TAP's queue holds: the kernel keeps them all while the end waits.
        (await ns.ExecAsync(
            ["python3", "-c",
             "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n" +
             $"for i in range({Sent}):\n  s.sendto(i.to_bytes(4,'big')+bytes(96),('10.0.2.99',9))\n"],
            TimeSpan.FromSeconds(60))).EnsureSuccess();

        // The poller has seen the TAP readable and the receiver full by now (or sees it later: the
        // order of the two does not change what must hold).
        await Task.Delay(500);
        Assert.Equal(0, receiver.Delivered);

        // Room for 7 frames at a time: the watch stops and resumes about 30 times.
        while (receiver.Sequences.Count < Sent)
        {
            var before = receiver.Delivered;
            receiver.Open(7);
            for (var i = 0; i < 400 && receiver.Delivered == before; i++)
            {
                await Task.Delay(25);
            }

            Assert.True(receiver.Delivered > before, $"no frame after room was made; {receiver.Sequences.Count} of {Sent} datagrams arrived");
        }

        Assert.Equal(Enumerable.Range(0, Sent), receiver.Sequences);
        Assert.Equal(0, receiver.Violations);
    }

    [Fact]
    public async Task TapDeleted_EndsTheEnd_WithAMessageNamingTheTap()
    {
        await using var ns = await NetNamespace.CreateAsync();
        var receiver = new GatedReceiver();
        receiver.Open(int.MaxValue);
        await using var rig = await Rig.StartAsync(ns, "b", receiver);

        (await ns.ExecShellAsync($"ip link del {rig.Tap}")).EnsureSuccess();
        var ended = await Assert.ThrowsAsync<IOException>(() => rig.TapRun.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains($"TAP '{rig.Tap}' was deleted", ended.Message, StringComparison.Ordinal);
    }

    /// <summary>A gateway end and a TAP end it reads, the TAP moved into a namespace and addressed there.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly GatewayEnd _gateway;
        private readonly TapEnd _tapEnd;
        private Task _gatewayRun = Task.CompletedTask;

        private Rig(string tap)
        {
            Tap = tap;
            _gateway = new GatewayEnd("gateway", new GatewayOptions(), FramePool.Shared, 64, TimeProvider.System, NullLogger.Instance);
            _tapEnd = new TapEnd("ns", tap, FramePool.Shared, 64, NullLogger.Instance) { InputLoop = _gateway };
        }

        public string Tap { get; }

        public Task TapRun { get; private set; } = Task.CompletedTask;

        public static async Task<Rig> StartAsync(NetNamespace ns, string suffix, IPacketReceiver receiver)
        {
            HostRequirements.RequireRoot();
            HostRequirements.RequireCommand("ip");
            HostRequirements.RequireCommand("python3");
            var rig = new Rig($"nwi{Environment.ProcessId % 100000}{suffix}");
            try
            {
                rig._gatewayRun = rig._gateway.RunAsync(new Sink(), rig._stop.Token);
                rig.TapRun = rig._tapEnd.RunAsync(receiver, rig._stop.Token);
                for (var i = 0; i < 400 && !Directory.Exists($"/sys/class/net/{rig.Tap}"); i++)
                {
                    await Task.Delay(25);
                }

                // The open fd goes along into the namespace (as netwire run moves its TAP).
                (await ProcessRunner.RunAsync("ip", ["link", "set", rig.Tap, "netns", ns.Name], TimeSpan.FromSeconds(30))).EnsureSuccess();
                (await ns.ExecShellAsync(
                    $"sysctl -qw net.ipv6.conf.{rig.Tap}.disable_ipv6=1 && ip addr add 10.0.2.1/24 dev {rig.Tap} && ip link set {rig.Tap} up " +
                    $"&& ip neigh add 10.0.2.99 lladdr 52:54:00:12:34:56 dev {rig.Tap}")).EnsureSuccess();
                return rig;
            }
            catch
            {
                await rig.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await TapRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await _gatewayRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await _tapEnd.DisposeAsync();
            await _gateway.DisposeAsync();
            _stop.Dispose();
        }
    }

    /// <summary>
    /// Takes frames only while it has room (<see cref="Open"/>); records the sequence numbers of the
    /// test's UDP datagrams and counts frames handed to it without room (a broken contract).
    /// </summary>
    private sealed class GatedReceiver : IPacketReceiver
    {
        private readonly Lock _gate = new();
        private TaskCompletionSource _room = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _free;

        public List<int> Sequences { get; } = [];

        public int Delivered { get; private set; }

        public int Violations { get; private set; }

        public bool CanRecvPacket
        {
            get
            {
                lock (_gate)
                {
                    return _free > 0;
                }
            }
        }

        public void Open(int frames)
        {
            TaskCompletionSource room;
            lock (_gate)
            {
                _free = frames;
                room = _room;
                _room = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            room.TrySetResult();
        }

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                return _free > 0 ? default : new ValueTask(_room.Task.WaitAsync(cancellationToken));
            }
        }

        public void RecvPacket(Frame frame)
        {
            lock (_gate)
            {
                if (_free <= 0)
                {
                    Violations++;
                }

                _free--;
                Delivered++;
                var span = frame.Span;

                // IPv4 UDP to port 9: the datagram's first 4 bytes are its sequence number.
                if (span.Length >= 46 && span[12] == 0x08 && span[13] == 0x00 && span[23] == 17 && span[36] == 0 && span[37] == 9)
                {
                    Sequences.Add((span[42] << 24) | (span[43] << 16) | (span[44] << 8) | span[45]);
                }
            }

            frame.Dispose();
        }
    }

    private sealed class Sink : IPacketReceiver
    {
        public bool CanRecvPacket => true;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

        public void RecvPacket(Frame frame) => frame.Dispose();
    }
}
