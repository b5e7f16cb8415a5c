using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// The TAP side is flooded by the namespace's kernel while the guest does not read: NetWire stops
/// reading the TAP, holds a bounded number of frames, lets the kernel drop the rest and counts
/// those drops; when the guest reads again every frame NetWire accepted is delivered.
/// </summary>
[Trait("Category", "Host")]
public sealed class BridgeTapBackpressureTests
{
    [Fact]
    public async Task FloodFromTheNamespace_WhileTheGuestStalls_IsBoundedCountedAndDeliveredLater()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("python3");
        const int Queue = 64;
        const int Sent = 30_000;

        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        await using var ns = await NetNamespace.CreateAsync();
        var tap = "nwb" + Environment.ProcessId % 100000;
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{dir}/g.sock", $"tap:{tap}", ns, dir, "--queue-frames", Queue.ToString());
        await bridge.WaitForLogAsync($"TAP {tap} attached");
        (await ns.ExecShellAsync(
            $"sysctl -qw net.ipv6.conf.{tap}.disable_ipv6=1 && ip addr add 10.0.2.1/24 dev {tap} && ip link set {tap} up " +
            $"&& ip neigh add 10.0.2.99 lladdr 52:54:00:12:34:56 dev {tap}")).EnsureSuccess();

        // The guest attaches and then stops reading.
        using var guest = await StreamClient.ConnectAsync(Path.Combine(dir, "g.sock"));
        guest.Socket.ReceiveBufferSize = 64 * 1024;

        var flood = await ns.ExecAsync(
            ["python3", "-c",
             "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nn=0\n" +
             $"for i in range({Sent}):\n  s.sendto(i.to_bytes(4,'big')+bytes(996),('10.0.2.99',9))\n  n+=1\nprint(n)"],
            TimeSpan.FromSeconds(120));
        flood.EnsureSuccess();
        Assert.Equal(Sent.ToString(), flood.Stdout.Trim());

        await Task.Delay(1500);
        var stalled = bridge.ReadStatus();
        var host = BridgeProcess.End(stalled, "host");
        var accepted = host.GetProperty("rx_frames").GetInt64();
        var kernelDrops = host.GetProperty("drops").GetProperty("kernel").GetInt64();
        Assert.True(kernelDrops > 0, $"the kernel must have dropped some of {Sent} frames: {host}");
        Assert.True(accepted < Sent, $"NetWire cannot have taken everything while the guest stalls: {host}");
        Assert.True(BridgeProcess.End(stalled, "guest").GetProperty("queued").GetInt32() <= Queue);
        Assert.True(stalled.GetProperty("working_set_bytes").GetInt64() < 400L << 20, $"memory: {stalled.GetProperty("working_set_bytes")}");

        // The guest reads again: it gets exactly the frames NetWire accepted, in order.
        var expected = BridgeProcess.End(stalled, "host").GetProperty("rx_frames").GetInt64();
        var seen = 0L;
        var last = -1;
        while (seen < expected)
        {
            var frame = await guest.ReceiveFrameAsync(TimeSpan.FromSeconds(30));
            Assert.NotNull(frame);
            seen++;
            if (frame.Length >= 46 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == 17)
            {
                var seq = (frame[42] << 24) | (frame[43] << 16) | (frame[44] << 8) | frame[45];
                Assert.True(seq > last, $"frame {seq} after {last}: reordered");
                last = seq;
            }
        }

        var status = await bridge.StopAsync();
        var guestEnd = BridgeProcess.End(status, "guest");
        var hostEnd = BridgeProcess.End(status, "host");
        Assert.Equal(hostEnd.GetProperty("rx_frames").GetInt64(), guestEnd.GetProperty("tx_frames").GetInt64() + guestEnd.GetProperty("drops_total").GetInt64());
        Assert.Equal(0, guestEnd.GetProperty("drops").GetProperty("send_failed").GetInt64());

        // Every datagram the namespace sent is accounted for: taken by NetWire, dropped by the
        // kernel while NetWire paused, or still in the kernel's TAP queue at shutdown.
        var hostDrops = hostEnd.GetProperty("drops");
        Assert.True(
            hostEnd.GetProperty("rx_frames").GetInt64() + hostDrops.GetProperty("kernel").GetInt64() + hostDrops.GetProperty("shutdown").GetInt64() >= Sent,
            hostEnd.ToString());
        Directory.Delete(dir, recursive: true);
    }
}
