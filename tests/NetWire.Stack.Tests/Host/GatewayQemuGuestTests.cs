using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using NetWire.Core.Packets;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// A real QEMU guest on <c>-netdev stream</c> to <c>netwire serve</c> (the user-mode gateway is its
/// default host end). Over IPv4 it takes a DHCP lease, resolves a name through 10.0.2.3, pings
/// 10.0.2.2 and fetches a file from a host-loopback server through the gateway. Over IPv6 its
/// kernel takes a SLAAC address in fd00::/64 from the gateway's router advertisement, pings
/// fd00::2, resolves through fd00::3 and fetches from a server on the host's [::1]. The names are
/// answered by a DNS responder this test runs on 127.0.0.1 (for fd00::3 the query crosses
/// families); the status file and QMP query-wire then report the guest's addresses, and
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
        await using var rig = await ServedGuest.StartAsync(IPAddress.Loopback, seed: 11);
        var before = await rig.ScrapeAsync();
        Assert.Equal(0, Sample(before, "netwire_wire_frames_total", "direction=rx,end=guest"));
        var script = $$"""
            . /lib/nw.sh
            mark ADDR $(ip -o -4 addr show eth0 | awk '{print $4}')
            if nslookup name.test 10.0.2.3 > /tmp/ns 2>&1 && grep -q 10.9.8.7 /tmp/ns; then mark DNS_OK; else mark DNS_FAIL; cat /tmp/ns; fi
            if ping -c 2 -W 5 10.0.2.2 > /tmp/ping 2>&1; then mark PING_OK; else mark PING_FAIL; cat /tmp/ping; fi
            nc 10.0.2.2 {{rig.Port}} < /dev/null > /tmp/f
            mark SHA $(sha256sum /tmp/f | cut -d' ' -f1)
            """;
        await using var guest = rig.Boot("nw.ip=dhcp ipv6.disable=1", script);

        Assert.Equal("10.0.2.15/24", (await guest.WaitForMarkerAsync("ADDR", TimeSpan.FromSeconds(120))).Trim());
        await guest.WaitForMarkerAsync("DNS_OK", TimeSpan.FromSeconds(60));
        await guest.WaitForMarkerAsync("PING_OK", TimeSpan.FromSeconds(60));
        await rig.AssertFetchedAsync(guest);

        using (var wire = await rig.QueryWireAsync())
        {
            var ends = wire.RootElement.GetProperty("ends");
            Assert.Equal("10.0.2.15", ends[0].GetProperty("guest-ip").GetString());
            Assert.True(ends[0].GetProperty("tx-bytes").GetInt64() > rig.Payload.Length);
        }

        var after = await rig.ScrapeAsync();
        Assert.True(Sample(after, "netwire_wire_frames_total", "direction=rx,end=guest") > 10);
        Assert.True(Sample(after, "netwire_wire_bytes_total", "direction=tx,end=guest") > rig.Payload.Length);
        Assert.True(Sample(after, "netwire_gateway_dhcp_leases_total", "end=host") >= 1);
        Assert.True(Sample(after, "netwire_gateway_tcp_opened_total", "end=host") >= 1);
        Assert.Equal(0, Sample(after, "netwire_gateway_drops_total", "end=host,reason=bad_checksum"));
        Assert.True(Sample(after, "process_cpu_seconds_total", "") > 0);

        using var final = await rig.StopAsync();
        Assert.Equal("stopped", final.RootElement.GetProperty("state").GetString());
        var gateway = final.RootElement.GetProperty("ends")[1].GetProperty("gateway");
        Assert.True(gateway.GetProperty("dhcp_leases").GetInt64() >= 1);
        Assert.True(gateway.GetProperty("tcp_opened").GetInt64() >= 1);
        Assert.True(gateway.GetProperty("udp_flows").GetInt64() >= 1);
        Assert.True(gateway.GetProperty("drops").TryGetProperty("bad_checksum", out _));
    }

    [Fact]
    public async Task Guest_TakesASlaacAddress_PingsResolvesAndFetches_OverIpv6()
    {
        await using var rig = await ServedGuest.StartAsync(IPAddress.IPv6Loopback, seed: 61);
        var script = $$"""
            . /lib/nw.sh
            mark ROUTE6 $(ip -6 route show default | awk '{print $3; exit}')
            if ping -6 -c 2 -W 5 fd00::2 > /tmp/ping 2>&1; then mark PING6_OK; else mark PING6_FAIL; cat /tmp/ping; fi
            if nslookup name.test fd00::3 > /tmp/ns 2>&1 && grep -q 10.9.8.7 /tmp/ns; then mark DNS6_OK; else mark DNS6_FAIL; cat /tmp/ns; fi
            nc fd00::2 {{rig.Port}} < /dev/null > /tmp/f
            mark SHA $(sha256sum /tmp/f | cut -d' ' -f1)
            """;
        await using var guest = rig.Boot("nw.ip=dhcp nw.ip6=slaac", script);

        // EUI-64 from the NIC's MAC 52:54:00:12:34:56 (RFC 4291 2.5.1, appendix A); its router is fe80::2.
        const string Slaac = "fd00::5054:ff:fe12:3456";
        Assert.Equal($"{Slaac}/64", (await guest.WaitForMarkerAsync("NET6", TimeSpan.FromSeconds(120))).Trim());
        Assert.Equal("fe80::2", (await guest.WaitForMarkerAsync("ROUTE6", TimeSpan.FromSeconds(60))).Trim());
        await guest.WaitForMarkerAsync("PING6_OK", TimeSpan.FromSeconds(60));
        await guest.WaitForMarkerAsync("DNS6_OK", TimeSpan.FromSeconds(60));
        await rig.AssertFetchedAsync(guest);

        using (var wire = await rig.QueryWireAsync())
        {
            var ends = wire.RootElement.GetProperty("ends");
            Assert.Contains(Slaac, ends[0].GetProperty("guest-ip6").EnumerateArray().Select(a => a.GetString()));
            Assert.Contains(Slaac, ends[1].GetProperty("guest-ip6").EnumerateArray().Select(a => a.GetString()));
        }

        using var final = await rig.StopAsync();
        var host = final.RootElement.GetProperty("ends")[1];
        Assert.Equal(Slaac, host.GetProperty("guest_ip6")[0].GetString());
        var gateway = host.GetProperty("gateway");
        Assert.True(gateway.GetProperty("router_advertisements").GetInt64() >= 1);
        Assert.True(gateway.GetProperty("tcp_opened").GetInt64() >= 1);
        Assert.Equal(0, gateway.GetProperty("drops").GetProperty("ndp_invalid").GetInt64());
        Assert.Equal(0, gateway.GetProperty("drops").GetProperty("bad_checksum").GetInt64());
    }

    /// <summary>
    /// <c>netwire serve</c> with a status file and a QMP socket, a DNS responder on 127.0.0.1 it
    /// forwards to, and a server on <see cref="Port"/> of the given loopback address that sends
    /// <see cref="Payload"/> to the first client.
    /// </summary>
    private sealed class ServedGuest : IAsyncDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("nwgw-").FullName;
        private readonly CancellationTokenSource _stop = new();
        private UdpClient? _dns;
        private Task _dnsTask = Task.CompletedTask;
        private TcpListener? _listener;
        private Task _server = Task.CompletedTask;
        private ManagedProcess? _serve;

        public byte[] Payload { get; } = new byte[1024 * 1024];

        public int Port { get; private set; }

        /// <summary>Where serve's <c>--metrics-addr</c> listens on 127.0.0.1.</summary>
        public int MetricsPort { get; } = FreePort();

        private string Socket => Path.Combine(_dir, "g.sock");

        private string Status => Path.Combine(_dir, "status.json");

        private string Qmp => Path.Combine(_dir, "qmp.sock");

        public static async Task<ServedGuest> StartAsync(IPAddress serverAddress, int seed)
        {
            HostRequirements.RequireCommand("qemu-system-x86_64");
            HostRequirements.RequireGuestImage();

            // Debian's python3, where python3-prometheus-client installs (not a pyenv one first on PATH).
            HostRequirements.RequireFile("/usr/lib/python3/dist-packages/prometheus_client/parser.py", "apt-get install python3-prometheus-client");
            var rig = new ServedGuest();
            try
            {
                await rig.StartCoreAsync(serverAddress, seed);
                return rig;
            }
            catch
            {
                await rig.DisposeAsync();
                throw;
            }
        }

        private async Task StartCoreAsync(IPAddress serverAddress, int seed)
        {
            _dns = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
            var dnsPort = ((IPEndPoint)_dns.Client.LocalEndPoint!).Port;
            _dnsTask = AnswerDnsAsync(_dns, _stop.Token);

            new Random(seed).NextBytes(Payload);
            _listener = new TcpListener(serverAddress, 0);
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            var listener = _listener;
            _server = Task.Run(async () =>
            {
                using var client = await listener.AcceptTcpClientAsync(_stop.Token);
                await client.GetStream().WriteAsync(Payload, _stop.Token);
                client.Client.Shutdown(SocketShutdown.Send);
            });

            _serve = ProcessRunner.Start("dotnet",
            [
                RepoPaths.NetwireDll, "serve", "--guest", $"stream:unix:{Socket}", "--spice-port", "0", "--disable-ticketing",
                "--qmp", $"unix:{Qmp}", "--status-file", Status,
                "--allow-host-loopback", "--dns-forward", $"127.0.0.1:{dnsPort}", "--metrics-addr", $"127.0.0.1:{MetricsPort}",
            ]);
            await _serve.WaitForLineAsync(l => l.Contains("Bridge up", StringComparison.Ordinal) && l.Contains("gateway 10.0.2.0/24", StringComparison.Ordinal) && l.Contains("fd00::/64 via fd00::2", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            await _serve.WaitForLineAsync(l => l.Contains("SPICE server listening", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

            // The metrics endpoint starts last (after the SPICE server and the QMP socket): a scrape
            // right after the SPICE line can find nothing listening yet.
            await _serve.WaitForLineAsync(l => l.Contains($"Metrics served at http://127.0.0.1:{MetricsPort}/metrics", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        }

        public QemuGuest Boot(string kernelArgs, string script) => QemuGuest.Start(new QemuGuestOptions
        {
            Netdev = $"stream,id=n0,server=off,addr.type=unix,addr.path={Socket}",
            KernelArgs = kernelArgs,
            TestScript = script,
        });

        /// <summary>The guest's NW:SHA of what it fetched is the payload's, and its script ended with 0.</summary>
        public async Task AssertFetchedAsync(QemuGuest guest)
        {
            var sha = (await guest.WaitForMarkerAsync("SHA", TimeSpan.FromSeconds(120))).Trim();
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Payload)), sha);
            Assert.Equal(0, await guest.WaitForTestExitAsync(TimeSpan.FromSeconds(30)));
            await _server;
        }

        public Task<Dictionary<string, double>> ScrapeAsync() => GatewayQemuGuestTests.ScrapeAsync(MetricsPort);

        public async Task<JsonDocument> QueryWireAsync()
        {
            var wire = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "ctl", "--qmp", $"unix:{Qmp}", "query-wire"], TimeSpan.FromSeconds(60));
            Assert.Equal(0, wire.ExitCode);
            return JsonDocument.Parse(wire.Stdout);
        }

        /// <summary>Stops serve with SIGTERM (exit 0) and returns its final status file.</summary>
        public async Task<JsonDocument> StopAsync()
        {
            await _stop.CancelAsync();
            await _dnsTask;
            _serve!.Terminate();
            Assert.Equal(0, await _serve.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            return JsonDocument.Parse(await File.ReadAllBytesAsync(Status));
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            if (_serve is not null)
            {
                await _serve.DisposeAsync();
            }

            _listener?.Stop();
            _dns?.Dispose();
            _stop.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
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

    /// <summary>Answers every query with its question, and an A question with 10.9.8.7.</summary>
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
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>The reply to <paramref name="query"/>: its question, and for an A question the answer 10.9.8.7 (RFC 1035 4.1).</summary>
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
