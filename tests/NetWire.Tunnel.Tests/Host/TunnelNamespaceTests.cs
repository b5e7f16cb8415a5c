using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests.Host;

/// <summary>
/// End to end with real peers: curl in a namespace (the kernel's TCP stack as the guest) on the
/// user-mode gateway, <c>netwire tunnel-client</c> as a separate process, and
/// <c>python3 -m http.server</c> bound to the host's 127.0.0.1, which the gateway's NAT does not
/// reach (no --allow-host-loopback): the only way in is a service's virtual IP.
/// </summary>
[Trait("Category", "Host")]
public sealed class TunnelNamespaceTests
{
    private static readonly TimeSpan s_long = TimeSpan.FromSeconds(240);

    private sealed class Setup : IAsyncDisposable
    {
        public required TunnelServer Server { get; init; }

        public required GuestNamespace Guest { get; init; }

        public required ManagedProcess Http { get; init; }

        public required ManagedProcess Client { get; init; }

        public required string Directory { get; init; }

        public required int HttpPort { get; init; }

        public required Dictionary<string, string> Services { get; init; }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Http.DisposeAsync();
            await Guest.DisposeAsync();
            await Server.DisposeAsync();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Files big (50 MiB) and small (5 MiB) over HTTP on 127.0.0.1, published as "web" on port 80; "closed" is a port nothing listens on.</summary>
    private static async Task<(Setup Setup, byte[] Big, byte[] Small)> StartAsync()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("curl");
        HostRequirements.RequireCommand("python3");
        var directory = Path.Combine(Path.GetTempPath(), $"nwtun-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(directory);
        var big = new byte[50 * 1024 * 1024];
        new Random(50).NextBytes(big);
        var small = big.AsSpan(0, 5 * 1024 * 1024).ToArray();
        await File.WriteAllBytesAsync(Path.Combine(directory, "big"), big);
        await File.WriteAllBytesAsync(Path.Combine(directory, "small"), small);
        var passwordFile = Path.Combine(directory, "password");
        await File.WriteAllTextAsync(passwordFile, TunnelServer.Password + "\n");

        GuestNamespace? guest = null;
        var server = TunnelServer.Start(guestAddress: () => guest?.Gateway.GuestIp);
        guest = await GuestNamespace.StartAsync(server.Network);
        var httpPort = FreePort();
        var closedPort = FreePort();
        var http = ProcessRunner.Start("python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, httpPort.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await http.WaitForLineAsync(line => line.Contains("Serving HTTP", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var client = ProcessRunner.Start("dotnet", [
            RepoPaths.NetwireDll, "tunnel-client", "--server", $"127.0.0.1:{server.EndPoint.Port}", "--password-file", passwordFile,
            "--service", $"web=127.0.0.1:{httpPort},port=80", "--service", $"closed=127.0.0.1:{closedPort}"]);
        var services = new Dictionary<string, string>();
        foreach (var name in (string[])["web", "closed"])
        {
            var line = await client.WaitForLineAsync(l => l.StartsWith($"service {name} ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            services[name] = line.Split(' ')[2];
        }

        return (new Setup { Server = server, Guest = guest, Http = http, Client = client, Directory = directory, HttpPort = httpPort, Services = services }, big, small);
    }

    private static string Hash(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    [Fact]
    public async Task Curl_Downloads50MiB_ThroughTheVirtualIp_Sha256Matches_WhileTheNatPathIsClosed()
    {
        var (setup, big, _) = await StartAsync();
        await using (setup)
        {
            Assert.Equal("10.0.2.31:80", setup.Services["web"]);

            // The same server through the gateway's NAT: host loopback is not allowed.
            var direct = await setup.Guest.Namespace.ExecShellAsync($"curl -sS --max-time 20 http://10.0.2.2:{setup.HttpPort}/small > /dev/null; echo exit=$?");
            Assert.DoesNotContain("exit=0", direct.Stdout, StringComparison.Ordinal);

            var result = await setup.Guest.Namespace.ExecShellAsync("curl -sS --max-time 200 http://10.0.2.31/big | sha256sum", s_long);
            Assert.True(result.Succeeded, result.Stdout + result.Stderr);
            Assert.StartsWith(Hash(big), result.Stdout.Trim(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task TwentyConcurrentDownloads_AllMatch()
    {
        var (setup, _, small) = await StartAsync();
        await using (setup)
        {
            var script = "d=$(mktemp -d); for i in $(seq 20); do (curl -sS --max-time 200 http://10.0.2.31/small | sha256sum > $d/$i) & done; wait; cat $d/*; rm -r $d";
            var result = await setup.Guest.Namespace.ExecShellAsync(script, s_long);
            var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 20, result.Stdout + result.Stderr);
            var expected = Hash(small);

            // On a mismatch, what curl said and the tunnel client's log say how the streams ended.
            var wrong = lines.Count(line => !line.StartsWith(expected, StringComparison.Ordinal));
            Assert.True(wrong == 0, $"{wrong} of 20 downloads differ from {expected}\ncurl:\n{result.Stderr}\ntunnel-client:\n{setup.Client.FormattedOutput}");
            Assert.True(setup.Server.Gateway.Counters.Opened >= 20);
        }
    }

    [Fact]
    public async Task RefusingService_GivesTheGuestConnectionRefused()
    {
        var (setup, _, _) = await StartAsync();
        await using (setup)
        {
            var result = await setup.Guest.Namespace.ExecShellAsync($"curl -sS --max-time 60 http://{setup.Services["closed"]}/; echo exit=$?");
            Assert.Contains("exit=7", result.Stdout, StringComparison.Ordinal);
            Assert.Contains("Couldn't connect", result.Stderr, StringComparison.Ordinal);

            // A SYN to the gateway's own address is refused as well (slirp's fork called exit() here),
            // and the tunnel keeps working afterwards.
            var own = await setup.Guest.Namespace.ExecShellAsync("curl -sS --max-time 60 http://10.0.2.2:80/; echo exit=$?");
            Assert.Contains("exit=7", own.Stdout, StringComparison.Ordinal);
            var after = await setup.Guest.Namespace.ExecShellAsync("curl -sS --max-time 60 -o /dev/null -w '%{http_code}' http://10.0.2.31/small");
            Assert.Equal("200", after.Stdout.Trim());
        }
    }

    [Fact]
    public async Task UrgentDataFromTheGuest_ArrivesInline_AndTheChannelLives()
    {
        // protocol.md §7.3: TCP urgent data from the guest shut the real tunnel channel down.
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("python3");
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var serve = Task.Run(async () =>
        {
            using var socket = await echo.AcceptSocketAsync();
            var buffer = new byte[1024];
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await socket.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }

            socket.Shutdown(SocketShutdown.Send);
        });
        GuestNamespace? guest = null;
        await using var server = TunnelServer.Start(guestAddress: () => guest?.Gateway.GuestIp);
        guest = await GuestNamespace.StartAsync(server.Network);
        await using (guest)
        {
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            var (client, published) = server.CreateClient(Client.TunnelServiceSpec.Parse($"echo=127.0.0.1:{((IPEndPoint)echo.LocalEndpoint).Port},port=7"));
            var running = client.RunAsync(stop.Token);
            var address = await published.WaitAsync("echo");
            var script = "import socket,sys\n" +
                $"s=socket.create_connection(('{address}',7),30)\n" +
                "s.sendall(b'ab'); s.send(b'!', socket.MSG_OOB); s.sendall(b'cd'); s.shutdown(socket.SHUT_WR)\n" +
                "d=b''\n" +
                "while True:\n" +
                "    r=s.recv(100)\n" +
                "    if not r: break\n" +
                "    d+=r\n" +
                "sys.stdout.write(d.decode())\n";
            var result = await guest.Namespace.ExecAsync("python3", "-c", script);
            Assert.True(result.Succeeded, result.Stderr);
            Assert.Equal("ab!cd", result.Stdout);
            Assert.Equal(0, server.Gateway.Counters.ProtocolErrors);
            await serve;
            await stop.CancelAsync();
            await running;
        }
    }

    [Fact]
    public async Task ClientKilledMidTransfer_CurlGetsAResetOrEarlyEnd_NotAHang()
    {
        var (setup, _, _) = await StartAsync();
        await using (setup)
        {
            var output = Path.Combine(setup.Directory, "partial");
            await using var curl = setup.Guest.Namespace.Start("sh", "-c", $"curl -sS --max-time 200 --limit-rate 2M -o {output} http://10.0.2.31/big; echo exit=$?");
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
            while (!(File.Exists(output) && new FileInfo(output).Length > 1024 * 1024) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, TestContext.Current.CancellationToken);
            }

            Assert.True(File.Exists(output) && new FileInfo(output).Length > 1024 * 1024, "the download did not start");
            setup.Client.Signal(9);
            await curl.WaitForExitAsync(TimeSpan.FromSeconds(120));
            var exit = curl.StdoutLines.Single(l => l.StartsWith("exit=", StringComparison.Ordinal));

            // 18: transfer closed with data outstanding; 56: connection reset. 28 would be the timeout (a hang).
            Assert.Contains(exit, (string[])["exit=18", "exit=56"]);
            Assert.True(new FileInfo(output).Length < 50 * 1024 * 1024);
        }
    }
}
