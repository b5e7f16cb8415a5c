using System.Text.Json;
using System.Text.Json.Nodes;
using NetWire.Core.Packets;
using NetWire.Testing;
using static NetWire.Devices.Tests.Pcap.CaptureBytes;

namespace NetWire.Devices.Tests.Pcap;

/// <summary><c>netwire inspect</c>: every file in captures/ matches its expected summary; JSON has the documented shape.</summary>
public sealed class InspectCliTests
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    public static TheoryData<string> Captures()
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "captures")).Order(StringComparer.Ordinal))
        {
            if (path.EndsWith(".pcap", StringComparison.Ordinal) || path.EndsWith(".pcapng", StringComparison.Ordinal))
            {
                data.Add(Path.GetFileName(path));
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Captures))]
    public async Task EveryCapture_MatchesItsExpectedSummary(string name)
    {
        var path = Path.Combine(RepoPaths.Root, "captures", name);
        var expectedPath = Path.ChangeExtension(path, ".inspect.json");
        Assert.True(File.Exists(expectedPath), $"captures/{name} needs an expected summary, {Path.GetFileName(expectedPath)}");
        var result = await NetwireAsync("inspect", path, "--json");
        Assert.Equal(0, result.ExitCode);

        var actual = JsonNode.Parse(result.Stdout)!.AsObject();
        var expected = JsonNode.Parse(await File.ReadAllTextAsync(expectedPath, TestContext.Current.CancellationToken))!.AsObject();

        // "file" is the path as given on the command line; the rest must match exactly.
        Assert.Equal(path, actual["file"]!.GetValue<string>());
        actual.Remove("file");
        expected.Remove("file");
        Assert.True(JsonNode.DeepEquals(expected, actual), $"expected\n{expected}\nactual\n{actual}");
    }

    [Fact]
    public async Task Json_HasTheDocumentedShape()
    {
        var result = await NetwireAsync("inspect", Path.Combine(RepoPaths.Root, "captures", "bridge-qemu-stream-tap.pcapng"), "--json", "--top", "3");
        using var document = JsonDocument.Parse(result.Stdout);
        var root = document.RootElement;
        foreach (var (key, kind) in new[]
        {
            ("file", JsonValueKind.String), ("format", JsonValueKind.String), ("interfaces", JsonValueKind.Number),
            ("link_types", JsonValueKind.Array), ("frames", JsonValueKind.Number), ("bytes", JsonValueKind.Number),
            ("filtered_out", JsonValueKind.Number), ("first_ns", JsonValueKind.Number), ("last_ns", JsonValueKind.Number),
            ("duration_s", JsonValueKind.Number), ("protocols", JsonValueKind.Object), ("flow_count", JsonValueKind.Number),
            ("flows", JsonValueKind.Array), ("malformed", JsonValueKind.Array),
        })
        {
            Assert.Equal(kind, root.GetProperty(key).ValueKind);
        }

        Assert.Equal(3, root.GetProperty("flows").GetArrayLength());
        var tcp = root.GetProperty("flows")[0];
        Assert.Equal("TCP", tcp.GetProperty("protocol").GetString());
        Assert.True(tcp.GetProperty("tcp").GetProperty("handshake").GetBoolean());
        Assert.Equal(2, tcp.GetProperty("tcp").GetProperty("fin").GetInt32());
    }

    [Fact]
    public async Task Filter_KeepsOnlyMatchingFrames()
    {
        var result = await NetwireAsync("inspect", Path.Combine(RepoPaths.Root, "captures", "bridge-qemu-stream-tap.pcapng"), "--json", "--filter", "tcp port 5001");
        using var document = JsonDocument.Parse(result.Stdout);
        Assert.Equal(60, document.RootElement.GetProperty("frames").GetInt64());
        Assert.Equal(16, document.RootElement.GetProperty("filtered_out").GetInt64());
    }

    [Fact]
    public async Task MalformedFrames_AreListedWithIndexAndProblem()
    {
        var dir = Directory.CreateTempSubdirectory("netwire-inspect-").FullName;
        try
        {
            // A 1500-byte IPv4 packet cut to the 46 bytes of a minimum frame.
            var ipv4 = Frame(1, 60);
            new EthernetHeader(MacAddress.Broadcast, new MacAddress(0x5254_0000_0000), EtherType.Ipv4).WriteTo(ipv4);
            new Ipv4Header(0x0A00020F, 0x0A000202, IpProtocol.Udp, 1480).WriteTo(ipv4.AsSpan(EthernetFrame.HeaderLength));
            var file = Write(dir, "m.pcap", Concat(PcapHeader(), PcapRecord(0, 0, Frame(0)), PcapRecord(0, 1, ipv4)));
            var result = await NetwireAsync("inspect", file);
            Assert.Equal(0, result.ExitCode);
            Assert.Contains("malformed  1", result.Stdout, StringComparison.Ordinal);
            Assert.Contains("#2: IPv4 total length 1500 does not fit the 46 bytes", result.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task BadFile_ExitsWithUsageCode_NamingTheRecord()
    {
        var dir = Directory.CreateTempSubdirectory("netwire-inspect-").FullName;
        try
        {
            var file = Write(dir, "t.pcap", Concat(PcapHeader(), PcapRecord(0, 0, Frame(0)))[..^3]);
            var result = await NetwireAsync("inspect", file);
            Assert.Equal(2, result.ExitCode);
            Assert.Contains($"{file}: record 1 at byte offset 24: truncated record", result.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
