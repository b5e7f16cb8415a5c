using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// <c>netwire run</c> over IPv6, with the Linux stack in the namespace as the guest: tap0 has
/// fd00::100 and a default route via fd00::2, which reaches the host's ::1 with
/// --allow-host-loopback. curl, iperf3, python's sockets, rdisc6, ndisc6, dhclient and tshark
/// are the real peers.
/// </summary>
[Trait("Category", "Host")]
public sealed class RunCommandIpv6Tests
{
    private static async Task<ProcessResult> RunAsync(string script, params string[] extra)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        string[] args = ["dotnet", RepoPaths.NetwireDll, "run", "--allow-host-loopback", .. extra, "--", "sh", "-c", script];
        return await ProcessRunner.RunAsync(args[0], args[1..], TimeSpan.FromSeconds(120));
    }

    private static int FreePort(AddressFamily family)
    {
        using var probe = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Loopback : IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task Curl6_Downloads50MiBFromHostIpv6Loopback_WithMatchingSha256()
    {
        HostRequirements.RequireCommand("curl");
        var payload = new byte[50 * 1024 * 1024];
        new Random(66).NextBytes(payload);
        var expected = Convert.ToHexStringLower(SHA256.HashData(payload));
        using var listener = new TcpListener(IPAddress.IPv6Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = HostHttpServer.ServeOnceAsync(listener, payload);
        var result = await RunAsync($"curl -6 -sS --max-time 60 'http://[fd00::2]:{port}/file' | sha256sum");
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.StartsWith(expected, result.Stdout.Trim(), StringComparison.Ordinal);

        // The host's server sees the gateway's host socket, on ::1.
        Assert.Equal(IPAddress.IPv6Loopback, (await server).Address);
    }

    [Fact]
    public async Task RefusedIpv6Port_GivesConnectionRefused_NotAHang()
    {
        HostRequirements.RequireCommand("curl");
        var port = FreePort(AddressFamily.InterNetworkV6);
        var script = $$"""
            curl -6 -sS --max-time 30 'http://[fd00::2]:{{port}}/'; echo exit=$?
            python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.settimeout(30); s.connect(("fd00::2", {{port}}))' 2>&1 | tail -1
            """;
        var result = await RunAsync(script);
        Assert.Contains("exit=7", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("ConnectionRefusedError", result.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1500)]
    [InlineData(65520)]
    public async Task Iperf3OverIpv6_BothDirections_Completes(int mtu)
    {
        HostRequirements.RequireCommand("iperf3");
        var port = FreePort(AddressFamily.InterNetworkV6);
        await using var server = ProcessRunner.Start("iperf3", ["--forceflush", "-s", "-B", "::1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await server.WaitForLineAsync(l => l.Contains("listening", StringComparison.OrdinalIgnoreCase), TimeSpan.FromSeconds(30));
        var mtuText = mtu.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var result = await RunAsync($"iperf3 -6 -c fd00::2 -p {port} -t 2 && sleep 0.5 && iperf3 -6 -c fd00::2 -p {port} -t 2 -R", "--mtu", mtuText);
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Equal(2, result.Stdout.Split('\n').Count(l => l.Contains("receiver", StringComparison.Ordinal)));
        Assert.Contains("local fd00::100", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UdpOverIpv6_EchoesAndAClosedPortIsRefused()
    {
        HostRequirements.RequireCommand("python3");
        using var echo = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        var port = ((IPEndPoint)echo.Client.LocalEndPoint!).Port;
        using var closed = new UdpClient(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        var closedPort = ((IPEndPoint)closed.Client.LocalEndPoint!).Port;
        closed.Dispose();
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var datagram = await echo.ReceiveAsync(stop.Token);
                    byte[] reply = [.. "echo:"u8, .. datagram.Buffer];
                    await echo.SendAsync(reply.AsMemory(), datagram.RemoteEndPoint, stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });

        var script = $$"""
            python3 - <<'PY'
            import socket
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.settimeout(10)
            s.connect(("fd00::2", {{port}}))
            for i in range(5):
                s.send(b"hello %d" % i)
                print(s.recv(2048).decode())
            c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            c.settimeout(10)
            c.connect(("fd00::2", {{closedPort}}))
            c.send(b"anyone?")
            try:
                c.recv(2048)
                print("closed: answered")
            except ConnectionRefusedError:
                print("closed: refused")
            except socket.timeout:
                print("closed: timeout")
            PY
            """;
        var result = await RunAsync(script);
        await stop.CancelAsync();
        await server;
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        for (var i = 0; i < 5; i++)
        {
            Assert.Contains($"echo:hello {i}", result.Stdout, StringComparison.Ordinal);
        }

        Assert.Contains("closed: refused", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ipv6HostForward_ReachesServerInTheNamespace()
    {
        HostRequirements.RequireCommand("python3");
        var port = FreePort(AddressFamily.InterNetworkV6);
        const string Server = """
            python3 - <<'PY'
            import socket
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind(("::", 8080))
            s.listen(1)
            c, peer = s.accept()
            c.sendall(("hello-from-guest %s\n" % peer[0]).encode())
            c.close()
            PY
            """;
        var run = RunAsync(Server, "--forward", $"tcp:[::1]:{port}:8080");
        string? line = null;
        var attempts = new List<string>();
        for (var attempt = 0; attempt < 300 && line is null && !run.IsCompleted; attempt++)
        {
            try
            {
                using var client = new TcpClient(AddressFamily.InterNetworkV6);
                await client.ConnectAsync(IPAddress.IPv6Loopback, port);
                using var reader = new StreamReader(client.GetStream());
                line = await reader.ReadLineAsync();
                attempts.Add(line ?? "EOF");
            }
            catch (Exception ex) when (ex is SocketException or IOException)
            {
                attempts.Add(ex.GetType().Name);
            }

            if (line is null)
            {
                // The forward listens before the namespace's server does; try again.
                await Task.Delay(100);
            }
        }

        var result = await run;
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);

        // The guest sees its client as the gateway's IPv6 address.
        Assert.True(line == "hello-from-guest fd00::2", $"{line}; attempts: {string.Join(", ", attempts)}; {result.Stdout}{result.Stderr}");
    }

    [Fact]
    public async Task RealNdpAndDhcpv6Clients_ReadTheGatewaysAnswers()
    {
        HostRequirements.RequireCommand("rdisc6");
        HostRequirements.RequireCommand("ndisc6");
        HostRequirements.RequireCommand("dhclient");
        var script = """
            set -e
            echo "== rdisc6"; rdisc6 -1 -w 3000 tap0
            echo "== ndisc6"; ndisc6 -1 -w 3000 fd00::2 tap0
            echo "== ping"; busybox ping -6 -c 2 -W 5 fd00::2
            echo "== dhclient"
            # dhclient binds port 546 on tap0's link-local address, which is tentative until the
            # kernel's duplicate address detection for it is over (about a second after tap0 came up).
            for i in $(seq 50); do ip -6 addr show dev tap0 scope link | grep -q tentative || break; sleep 0.1; done
            d=$(mktemp -d)
            printf '#!/bin/sh\necho "dhclient: $reason dns=$new_dhcp6_name_servers server=$new_dhcp6_server_id" >> %s/out\n' $d > $d/script
            chmod +x $d/script
            dhclient -6 -S -1 -v -lf $d/leases -pf $d/pid -sf $d/script tap0 2>&1
            cat $d/out
            dhclient -6 -x -pf $d/pid > /dev/null 2>&1 || true
            rm -rf $d
            """;
        var result = await RunAsync(script);
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        var output = result.Stdout;

        // rdisc6's own reading of the router advertisement (ndisc6 1.0.5's wording).
        var rdisc6 = output[output.IndexOf("== rdisc6", StringComparison.Ordinal)..output.IndexOf("== ndisc6", StringComparison.Ordinal)];
        Assert.Matches(@"Hop limit\s*:\s*64", rdisc6);
        Assert.Matches(@"Stateful address conf\.\s*:\s*No", rdisc6);
        Assert.Matches(@"Stateful other conf\.\s*:\s*Yes", rdisc6);
        Assert.Matches(@"Router lifetime\s*:\s*1800", rdisc6);
        Assert.Matches(@"Prefix\s*:\s*fd00::/64", rdisc6);
        Assert.Matches(@"On-link\s*:\s*Yes", rdisc6);
        Assert.Matches(@"Autonomous address conf\.\s*:\s*Yes", rdisc6);
        Assert.Matches(@"Valid time\s*:\s*86400", rdisc6);
        Assert.Matches(@"Pref\. time\s*:\s*14400", rdisc6);
        Assert.Matches(@"MTU\s*:\s*1500", rdisc6);
        Assert.Matches(@"Recursive DNS server\s*:\s*fd00::3", rdisc6);
        Assert.Matches(@"Source link-layer address:\s*52:55:0A:00:02:02", rdisc6);
        Assert.Matches(@"from fe80::2", rdisc6);

        Assert.Matches(@"Target link-layer address:\s*52:55:0A:00:02:02", output);
        Assert.Contains("2 packets received", output, StringComparison.Ordinal);

        // dhclient handed the REPLY's DNS server and the gateway's DUID-LL to its script.
        Assert.Matches(@"dhclient: \w+6 dns=fd00::3 server=0:3:0:1:52:55:a:0:2:2", output);
    }

    [Fact]
    public async Task Capture_OfIpv6Traffic_DecodesInTsharkWithNoMalformedFrames_AndInInspect()
    {
        HostRequirements.RequireCommand("tshark");
        HostRequirements.RequireCommand("curl");
        var dir = Directory.CreateTempSubdirectory("nwrun6-").FullName;
        var capture = Path.Combine(dir, "run6.pcapng");
        using var listener = new TcpListener(IPAddress.IPv6Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var buffer = new byte[4096];
            _ = await stream.ReadAsync(buffer);
            await stream.WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"u8.ToArray());
            client.Client.Shutdown(SocketShutdown.Send);
        });
        var refused = FreePort(AddressFamily.InterNetworkV6);
        var result = await RunAsync(
            $"busybox ping -6 -c 2 -W 5 fd00::2 > /dev/null; curl -6 -sS --max-time 30 'http://[fd00::2]:{port}/'; curl -6 -s --max-time 30 'http://[fd00::2]:{refused}/'; sleep 1",
            "--capture", capture);
        await server;
        Assert.Contains("hello", result.Stdout, StringComparison.Ordinal);

        var tshark = await ProcessRunner.RunAsync("tshark", ["-r", capture, "-Y", "_ws.malformed || _ws.expert.severity == error"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, tshark.ExitCode);
        Assert.Equal("", tshark.Stdout.Trim());
        var protocols = await ProcessRunner.RunAsync("tshark", ["-r", capture, "-T", "fields", "-e", "_ws.col.Protocol", "-e", "_ws.col.Info"], TimeSpan.FromSeconds(60));
        Assert.Contains("ICMPv6\tEcho (ping) reply", protocols.Stdout, StringComparison.Ordinal);
        Assert.Contains("Neighbor Advertisement fd00::2", protocols.Stdout, StringComparison.Ordinal);
        Assert.Contains("HTTP", protocols.Stdout, StringComparison.Ordinal);

        var inspect = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "inspect", capture, "--json"], TimeSpan.FromSeconds(60));
        Assert.Equal(0, inspect.ExitCode);
        using var summary = JsonDocument.Parse(inspect.Stdout);
        var text = inspect.Stdout;
        Assert.Contains("IPv6/TCP", text, StringComparison.Ordinal);
        Assert.Contains("IPv6/ICMPv6", text, StringComparison.Ordinal);
        Assert.Contains($"[fd00::2]:{port}", text, StringComparison.Ordinal);
        Assert.Equal(0, summary.RootElement.GetProperty("malformed").GetArrayLength());
        Directory.Delete(dir, recursive: true);
    }
}
