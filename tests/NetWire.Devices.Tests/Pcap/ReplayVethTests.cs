using System.Buffers.Binary;
using NetWire.Core.Packets;
using NetWire.Devices.Pcap;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>
/// <c>netwire replay --into pcap:</c> onto a veth pair in a namespace the test creates: tcpdump
/// on the peer sees every frame, byte for byte and in order, through both send paths (batched
/// <c>sendmmsg</c> for frames up to 2048 bytes, <c>send</c> for longer ones); a frame longer than
/// the MTU is refused by the kernel and counted, and the frames after it still go out.
/// </summary>
[Trait("Category", "Host")]
public sealed class ReplayVethTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("nwreplay-veth-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task TopSpeedOntoVeth_PeerSeesEveryFrameInOrder_TooLongOneCounted()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("tcpdump");
        const int Mtu = 3000;
        var frames = new List<byte[]>();
        for (var i = 0; i < 3000; i++)
        {
            // Mostly small frames, every 50th one 2500 bytes (past a batch slot), one past the MTU.
            frames.Add(Numbered(i, i % 50 == 7 ? 2500 : 60 + (i % 1400)));
        }

        frames.Insert(1234, Numbered(99_999, Mtu + 14 + 100));
        var file = Write(_dir, "in.pcap", Concat([PcapHeader(snaplen: 65535), .. frames.Select((f, i) => PcapRecord((uint)(i / 1000), (uint)(i % 1000), f))]));
        var expected = frames.Where(f => f.Length <= Mtu + 14).ToList();

        await using var ns = await NetNamespace.CreateAsync();
        (await ns.ExecShellAsync(
            $"ip link add rv0 type veth peer name rv1 && for d in rv0 rv1; do sysctl -qw net.ipv6.conf.$d.disable_ipv6=1; ip link set $d mtu {Mtu} up; done")).EnsureSuccess();
        var captured = Path.Combine(_dir, "peer.pcap");
        await using var tcpdump = ns.Start(["tcpdump", "-i", "rv1", "-n", "-s", "0", "-U", "-w", captured, "-c", expected.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), "ether proto 0x88b5"]);
        await tcpdump.WaitForLineAsync(l => l.Contains("listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var result = await ns.ExecAsync(["dotnet", RepoPaths.NetwireDll, "replay", file, "--into", "pcap:rv0", "--topspeed"], TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains($"delivered {expected.Count} frames, dropped 1", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, await tcpdump.WaitForExitAsync(TimeSpan.FromSeconds(60)));

        var seen = new List<string>();
        using (var reader = CaptureFileReader.Open(captured))
        {
            while (reader.TryReadNext(out _))
            {
                seen.Add(Convert.ToHexString(reader.Data));
            }
        }

        Assert.Equal(expected.Count, seen.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.True(Convert.ToHexString(expected[i]) == seen[i], $"frame {i} differs (of {expected.Count})");
        }
    }

    /// <summary>A frame of EtherType 0x88b5 (local experimental) carrying <paramref name="n"/>, which the peer's kernel drops.</summary>
    private static byte[] Numbered(int n, int length)
    {
        var frame = new byte[length];
        new EthernetHeader(new MacAddress(0x0200_0000_0002), new MacAddress(0x0200_0000_0001), (EtherType)0x88b5).WriteTo(frame);
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(EthernetFrame.HeaderLength), n);
        for (var i = 18; i < length; i++)
        {
            frame[i] = (byte)(n + i);
        }

        return frame;
    }
}
