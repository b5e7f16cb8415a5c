using System.Security.Cryptography;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// A real QEMU 7.2 guest (Debian kernel, virtio-net) attached to <c>netwire bridge</c>, whose host
/// end is a TAP in a namespace the test creates. The guest pings the namespace and sends it a
/// file over TCP; the capture is then read back with tshark.
/// </summary>
[Trait("Category", "Host")]
public sealed class BridgeQemuGuestTests
{
    private const string GuestScript = """
        . /lib/nw.sh
        if ping -c 3 -W 5 10.0.2.1 > /tmp/ping 2>&1; then mark PING_OK; else mark PING_FAIL; cat /tmp/ping; fi
        dd if=/dev/urandom of=/tmp/f bs=1024 count=1536 2>/dev/null
        mark SHA $(sha256sum /tmp/f | cut -d' ' -f1)
        if nc 10.0.2.1 5001 < /tmp/f; then mark SENT; else mark SEND_FAIL; fi
        """;

    public static TheoryData<string> Backends => new() { "stream-unix", "dgram-unix", "dgram-udp" };

    [Theory]
    [MemberData(nameof(Backends))]
    public async Task Guest_PingsAndSendsAFile_ThroughTheBridge_AndTheCaptureMatchesTheCounters(string backend)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("qemu-system-x86_64");
        HostRequirements.RequireCommand("tshark");
        HostRequirements.RequireGuestImage();

        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        await using var ns = await NetNamespace.CreateAsync();
        var tap = "nwt" + Environment.ProcessId % 100000;
        var (guestSpec, netdev, qemuInNamespace) = backend switch
        {
            "stream-unix" => ($"stream:unix:{dir}/g.sock", $"stream,id=n0,server=off,addr.type=unix,addr.path={dir}/g.sock", false),
            "dgram-unix" => ($"dgram:unix:{dir}/nw.dgram={dir}/qemu.dgram", $"dgram,id=n0,local.type=unix,local.path={dir}/qemu.dgram,remote.type=unix,remote.path={dir}/nw.dgram", false),
            _ => ("dgram:udp:127.0.0.1:47001=127.0.0.1:47002", "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=47002,remote.type=inet,remote.host=127.0.0.1,remote.port=47001", true),
        };

        await using var bridge = await BridgeProcess.StartAsync(guestSpec, $"tap:{tap}", ns, dir);
        await bridge.WaitForLogAsync($"TAP {tap} attached");
        (await ns.ExecAsync("ip", "addr", "add", "10.0.2.1/24", "dev", tap)).EnsureSuccess();
        (await ns.ExecAsync("ip", "link", "set", tap, "up")).EnsureSuccess();

        var received = Path.Combine(dir, "received.bin");
        await using var listener = ns.StartShell($"exec busybox nc -l -p 5001 > {received}");
        await ns.WaitForTcpListenerAsync(5001, TimeSpan.FromSeconds(20));

        await using var guest = QemuGuest.Start(new QemuGuestOptions
        {
            Netdev = netdev,
            KernelArgs = "nw.ip=10.0.2.15/24 nw.gw=10.0.2.1 ipv6.disable=1",
            TestScript = GuestScript,
            NetnsName = qemuInNamespace ? ns.Name : null,
        });

        Assert.Equal("", (await guest.WaitForMarkerAsync("PING_OK", TimeSpan.FromSeconds(120))).Trim());
        var sha = (await guest.WaitForMarkerAsync("SHA", TimeSpan.FromSeconds(60))).Trim();
        await guest.WaitForMarkerAsync("SENT", TimeSpan.FromSeconds(120));
        Assert.Equal(0, await listener.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, await guest.WaitForTestExitAsync(TimeSpan.FromSeconds(30)));

        var bytes = await File.ReadAllBytesAsync(received);
        Assert.Equal(1536 * 1024, bytes.Length);
        Assert.Equal(sha, Convert.ToHexStringLower(SHA256.HashData(bytes)));

        var status = await bridge.StopAsync();
        var guestEnd = BridgeProcess.End(status, "guest");
        var hostEnd = BridgeProcess.End(status, "host");
        var crossed = guestEnd.GetProperty("rx_frames").GetInt64() + hostEnd.GetProperty("rx_frames").GetInt64();
        Assert.True(guestEnd.GetProperty("rx_frames").GetInt64() > 1000, "a 1.5 MiB transfer is over 1000 frames");
        Assert.Equal("10.0.2.15", guestEnd.GetProperty("guest_ip").GetString());
        Assert.True(guestEnd.GetProperty("drops_total").GetInt64() == 0, $"guest drops: {guestEnd.GetProperty("drops")}");
        Assert.Equal(crossed, status.GetProperty("capture").GetProperty("frames").GetInt64());

        // tshark reads every frame, decodes none as malformed, and agrees on direction.
        var frames = await Tshark.FieldsAsync(bridge.CapturePath, null, "frame.number", "frame.p2p_dir", "eth.type");
        Assert.Equal(crossed, frames.Length);
        // The transfer's payload is random bytes: decode it as data, so that heuristic
        // dissectors guessing at it do not report their own errors.
        var flagged = await Tshark.FieldsAsync(bridge.CapturePath, "_ws.malformed || _ws.expert.severity == \"error\"", ["-d", "tcp.port==5001,data"], "frame.number", "frame.len", "_ws.col.protocol", "_ws.expert.message", "_ws.col.info");
        Assert.True(flagged.Length == 0, "tshark flagged frames:\n" + string.Join('\n', flagged));
        var fromGuest = await Tshark.FieldsAsync(bridge.CapturePath, "eth.src == 52:54:00:12:34:56", "frame.number");
        Assert.Equal(guestEnd.GetProperty("rx_frames").GetInt64(), fromGuest.Length);
        var inbound = await Tshark.FieldsAsync(bridge.CapturePath, "frame.packet_flags_direction == 1", "frame.number");
        Assert.Equal(fromGuest.Length, inbound.Length);
        var tcpToNamespace = await Tshark.FieldsAsync(bridge.CapturePath, "tcp.dstport == 5001 && ip.src == 10.0.2.15", "tcp.len");
        Assert.True(tcpToNamespace.Sum(long.Parse) >= 1536 * 1024);
        Directory.Delete(dir, recursive: true);
    }
}
