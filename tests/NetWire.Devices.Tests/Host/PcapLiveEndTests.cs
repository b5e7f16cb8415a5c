using NetWire.Devices.Tests.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>
/// The libpcap host end on a veth pair in a namespace: a frame the guest sends is injected on one
/// side and reaches the other side's kernel, whose answer is captured and delivered to the guest.
/// </summary>
[Trait("Category", "Host")]
public sealed class PcapLiveEndTests
{
    private static byte[] ArpRequest(byte[] senderIp, byte[] targetIp)
    {
        byte[] mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
        return
        [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, .. mac, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, .. mac, .. senderIp, 0, 0, 0, 0, 0, 0, .. targetIp,
        ];
    }

    [Theory]
    [InlineData(null)]
    [InlineData("arp")]
    public async Task InjectedFrames_ReachThePeer_AndItsAnswersAreCaptured(string? filter)
    {
        HostRequirements.RequireRoot();
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        await using var ns = await NetNamespace.CreateAsync();
        (await ns.ExecShellAsync(
            "ip link add nwva type veth peer name nwvb && sysctl -qw net.ipv6.conf.nwva.disable_ipv6=1 " +
            "&& ip link set nwva up && ip addr add 10.0.3.1/24 dev nwvb && ip link set nwvb up")).EnsureSuccess();

        var host = filter is null ? "pcap:nwva" : $"pcap:nwva,filter={filter}";
        await using var bridge = await BridgeProcess.StartAsync($"stream:unix:{dir}/g.sock", host, ns, dir);
        await bridge.WaitForLogAsync("pcap device nwva opened");
        using var guest = await StreamClient.ConnectAsync(Path.Combine(dir, "g.sock"));

        // nwvb's kernel answers an ARP request that arrived on the wire from NetWire.
        await guest.SendFrameAsync(ArpRequest([10, 0, 3, 2], [10, 0, 3, 1]));
        byte[]? reply = null;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (reply is null && DateTime.UtcNow < deadline)
        {
            var frame = await guest.ReceiveFrameAsync(TimeSpan.FromSeconds(20));
            Assert.NotNull(frame);
            if (frame is [.., _] && frame.Length >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 2)
            {
                reply = frame;
            }
            else
            {
                Assert.True(filter is null, "the BPF filter let a non-ARP frame through");
            }
        }

        Assert.NotNull(reply);
        Assert.Equal([10, 0, 3, 1], reply.AsSpan(28, 4).ToArray());
        Assert.Equal([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], reply.AsSpan(0, 6).ToArray());

        // The kernel on nwvb learned the guest's address from the injected request.
        var neighbours = await ns.ExecAsync("ip", "neigh", "show", "dev", "nwvb");
        Assert.Contains("10.0.3.2 lladdr 52:54:00:12:34:56", neighbours.Stdout, StringComparison.Ordinal);

        var status = await bridge.StopAsync();
        var hostEnd = BridgeProcess.End(status, "host");
        Assert.True(hostEnd.GetProperty("tx_frames").GetInt64() >= 1);
        Assert.True(hostEnd.GetProperty("rx_frames").GetInt64() >= 1);
        Directory.Delete(dir, recursive: true);
    }
}
