using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using NetWire.Core.Packets;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// A real QEMU guest on <c>-netdev stream</c> to <c>netwire serve</c> (the user-mode gateway is its
/// default host end): it takes a DHCP lease, resolves a name through 10.0.2.3 (answered by a DNS
/// responder this test runs on 127.0.0.1), pings 10.0.2.2, and fetches a file from a host-loopback
/// server through the gateway; the status file and QMP query-wire then report the lease, and
/// <c>--metrics-addr</c>'s /metrics, read with Prometheus' own Python parser
/// (python3-prometheus-client), shows the frame, byte, lease and connection counters risen from
/// what it showed before the guest started.
/// </summary>
[Trait("Category", "Host")]
public sealed class GatewayQemuGuestTests
{
    [Fact]
    public async Task Guest_LeasesResolvesPingsAndFetches_ThroughTheGateway()
    {
        HostRequirements.RequireCommand("qemu-system-x86_64");
        HostRequirements.RequireGuestImage();
        var dir = Directory.CreateTempSubdirectory("nwgw-").FullName;
        using var dns = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var dnsPort = ((IPEndPoint)dns.Client.LocalEndPoint!).Port;
        using var stop = new CancellationTokenSource();
        var dnsTask = AnswerDnsAsync(dns, stop.Token);

        var payload = new byte[1024 * 1024];
        new Random(11).NextBytes(payload);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync(stop.Token);
            await client.GetStream().WriteAsync(payload, stop.Token);
            client.Client.Shutdown(SocketShutdown.Send);
        });

        // Debian's python3, where python3-prometheus-client installs (not a pyenv one first on PATH).
        HostRequirements.RequireFile("/usr/lib/python3/dist-packages/prometheus_client/parser.py", "apt-get install python3-prometheus-client");
        var metricsPort = FreePort();
        var socket = Path.Combine(dir, "g.sock");
        var status = Path.Combine(dir, "status.json");
        var qmp = Path.Combine(dir, "qmp.sock");
        await using var serve = ProcessRunner.Start("dotnet",
        [
            RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{socket}", "--spice-port", "0", "--disable-ticketing",
            "--qmp", $"unix:{qmp}", "--status-file", status,
            "--allow-host-loopback", "--dns-forward", $"127.0.0.1:{dnsPort}", "--metrics-addr", $"127.0.0.1:{metricsPort}",
        ]);
        await serve.WaitForLineAsync(l => l.Contains("Bridge up", StringComparison.Ordinal) && l.Contains("gateway 10.0.2.0/24", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        await serve.WaitForLineAsync(l => l.Contains("SPICE server listening", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var before = await ScrapeAsync(metricsPort);
        Assert.Equal(0, Sample(before, "netwire_wire_frames_total", "direction=rx,end=guest"));

        var script = $$"""
            . /lib/nw.sh
            mark ADDR $(ip -o -4 addr show eth0 | awk '{print $4}')
            if nslookup name.test 10.0.2.3 > /tmp/ns 2>&1 && grep -q 10.9.8.7 /tmp/ns; then mark DNS_OK; else mark DNS_FAIL; cat /tmp/ns; fi
            if ping -c 2 -W 5 10.0.2.2 > /tmp/ping 2>&1; then mark PING_OK; else mark PING_FAIL; cat /tmp/ping; fi
            nc 10.0.2.2 {{port}} < /dev/null > /tmp/f
            mark SHA $(sha256sum /tmp/f | cut -d' ' -f1)
            """;
        await using var guest = QemuGuest.Start(new QemuGuestOptions
        {
            Netdev = $"stream,id=n0,server=off,addr.type=unix,addr.path={socket}",
            KernelArgs = "nw.ip=dhcp ipv6.disable=1",
            TestScript = script,
        });

        Assert.Equal("10.0.2.15/24", (await guest.WaitForMarkerAsync("ADDR", TimeSpan.FromSeconds(120))).Trim());
        await guest.WaitForMarkerAsync("DNS_OK", TimeSpan.FromSeconds(60));
        await guest.WaitForMarkerAsync("PING_OK", TimeSpan.FromSeconds(60));
        var sha = (await guest.WaitForMarkerAsync("SHA", TimeSpan.FromSeconds(120))).Trim();
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(payload)), sha);
        Assert.Equal(0, await guest.WaitForTestExitAsync(TimeSpan.FromSeconds(30)));
        await server;

        var wire = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", $"unix:{qmp}", "query-wire"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, wire.ExitCode);
        using (var reply = JsonDocument.Parse(wire.Stdout))
        {
            var ends = reply.RootElement.GetProperty("ends");
            Assert.Equal("10.0.2.15", ends[0].GetProperty("guest-ip").GetString());
            Assert.True(ends[0].GetProperty("tx-bytes").GetInt64() > payload.Length, wire.Stdout);
        }

        var after = await ScrapeAsync(metricsPort);
        Assert.True(Sample(after, "netwire_wire_frames_total", "direction=rx,end=guest") > 10);
        Assert.True(Sample(after, "netwire_wire_bytes_total", "direction=tx,end=guest") > payload.Length);
        Assert.True(Sample(after, "netwire_gateway_dhcp_leases_total", "end=host") >= 1);
        Assert.True(Sample(after, "netwire_gateway_tcp_opened_total", "end=host") >= 1);
        Assert.Equal(0, Sample(after, "netwire_gateway_drops_total", "end=host,reason=bad_checksum"));
        Assert.True(Sample(after, "process_cpu_seconds_total", "") > 0);

        await stop.CancelAsync();
        await dnsTask;
        serve.Terminate();
        Assert.Equal(0, await serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        using (var final = JsonDocument.Parse(await File.ReadAllBytesAsync(status)))
        {
            Assert.Equal("stopped", final.RootElement.GetProperty("state").GetString());
            var host = final.RootElement.GetProperty("ends")[1];
            var gateway = host.GetProperty("gateway");
            Assert.True(gateway.GetProperty("dhcp_leases").GetInt64() >= 1);
            Assert.True(gateway.GetProperty("tcp_opened").GetInt64() >= 1);
            Assert.True(gateway.GetProperty("udp_flows").GetInt64() >= 1);
            Assert.True(gateway.GetProperty("drops").TryGetProperty("bad_checksum", out _));
        }

        Directory.Delete(dir, recursive: true);
    }

    /// <summary>
    /// /metrics parsed by prometheus_client's parser: one line per sample, "name labels value",
    /// labels as sorted key=value pairs joined by commas.
    /// </summary>
    private static async Task<Dictionary<string, double>> ScrapeAsync(int port)
    {
        const string parser = """
            import sys, urllib.request
            from prometheus_client.parser import text_string_to_metric_families
            text = urllib.request.urlopen(sys.argv[1], timeout=30).read().decode()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    print(s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) or "-", repr(float(s.value)))
            """;
        var result = await ProcessRunner.RunAsync("/usr/bin/python3", ["-c", parser, $"http://127.0.0.1:{port}/metrics"], TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var samples = new Dictionary<string, double>();
        foreach (var line in result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            samples[parts[0] + " " + (parts[1] == "-" ? "" : parts[1])] = double.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture);
        }

        return samples;
    }

    private static double Sample(Dictionary<string, double> samples, string name, string labels) =>
        samples.TryGetValue(name + " " + labels, out var value) ? value : throw new Xunit.Sdk.XunitException($"no sample {name}{{{labels}}} in: {string.Join("; ", samples.Keys.Where(k => k.StartsWith("netwire", StringComparison.Ordinal)))}");

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Answers every A query with 10.9.8.7 (RFC 1035 4.1).</summary>
    private static async Task AnswerDnsAsync(UdpClient dns, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                var query = await dns.ReceiveAsync(cancellationToken);
                var reply = Answer(query.Buffer);
                await dns.SendAsync(reply, query.RemoteEndPoint, cancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>The reply to <paramref name="query"/>: its question, and for an A question the answer 10.9.8.7.</summary>
    private static byte[] Answer(byte[] query)
    {
        Assert.True(DnsPacket.TryParse(query, out var message), "a DNS query");

        // The question (RFC 1035 4.1.2): the name's labels up to the root's zero length, QTYPE, QCLASS.
        var body = message.Body;
        var nameEnd = 0;
        while (body[nameEnd] != 0)
        {
            nameEnd += body[nameEnd] + 1;
        }

        var questionEnd = DnsPacket.HeaderLength + nameEnd + 5;
        var isA = message.QuestionCount == 1 && body[nameEnd + 1] == 0 && body[nameEnd + 2] == 1;
        byte[] answer = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 8, 7];
        var reply = new byte[questionEnd + (isA ? answer.Length : 0)];
        query.AsSpan(0, questionEnd).CopyTo(reply);
        new DnsHeader(message.Id, 0x8180, message.QuestionCount, isA ? (ushort)1 : (ushort)0, 0, 0).WriteTo(reply);
        if (isA)
        {
            answer.CopyTo(reply, questionEnd);
        }

        return reply;
    }
}
