using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// <c>netwire run</c> with the Linux TCP stack in the namespace as the guest: every client runs
/// inside the namespace and reaches a server on the host's 127.0.0.1 through 10.0.2.2
/// (--allow-host-loopback). The namespace's default route leads only to the gateway.
/// </summary>
[Trait("Category", "Host")]
public sealed class RunCommandTests
{
    private static async Task<ProcessResult> RunAsync(string script, params string[] extra)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        string[] args = ["dotnet", RepoPaths.NetwireDll, "run", "--allow-host-loopback", .. extra, "--", "sh", "-c", script];
        return await ProcessRunner.RunAsync(args[0], args[1..], TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task Curl_Downloads50MiBFromHostLoopback_WithMatchingSha256()
    {
        HostRequirements.RequireCommand("curl");
        var payload = new byte[50 * 1024 * 1024];
        new Random(6).NextBytes(payload);
        var expected = Convert.ToHexStringLower(SHA256.HashData(payload));
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = HostHttpServer.ServeOnceAsync(listener, payload);
        var result = await RunAsync($"curl -sS --max-time 60 http://10.0.2.2:{port}/file | sha256sum");
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.StartsWith(expected, result.Stdout.Trim(), StringComparison.Ordinal);
        await server;
    }

    [Fact]
    public async Task RefusedPort_GivesConnectionRefused_NotAHang()
    {
        HostRequirements.RequireCommand("curl");
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var result = await RunAsync($"curl -sS --max-time 30 http://10.0.2.2:{port}/; echo exit=$?");
        Assert.Contains("exit=7", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Couldn't connect", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoHundredConcurrentConnections_AllEchoTheirBytes()
    {
        HostRequirements.RequireCommand("python3");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(512);
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var stop = new CancellationTokenSource();
        var server = Task.Run(async () =>
        {
            var handlers = new List<Task>();
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync(stop.Token);
                    handlers.Add(Task.Run(async () =>
                    {
                        using (client)
                        {
                            var stream = client.GetStream();
                            var buffer = new byte[65536];
                            int n;
                            while ((n = await stream.ReadAsync(buffer)) > 0)
                            {
                                await stream.WriteAsync(buffer.AsMemory(0, n));
                            }
                        }
                    }));
                }
            }
            catch (OperationCanceledException)
            {
            }

            await Task.WhenAll(handlers);
        });

        var script = $$"""
            python3 - <<'PY'
            import socket, threading
            ok = []
            def one(i):
                s = socket.create_connection(("10.0.2.2", {{port}}), timeout=60)
                data = bytes([i % 251]) * (20000 + i)
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b: break
                    got += b
                s.close()
                if got == data: ok.append(i)
            ts = [threading.Thread(target=one, args=(i,)) for i in range(200)]
            [t.start() for t in ts]
            [t.join() for t in ts]
            print("ok", len(ok))
            PY
            """;
        var result = await RunAsync(script);
        await stop.CancelAsync();
        await server;
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Contains("ok 200", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TapOffloads_CarryLargeSegmentsBothWays_AndEveryByteArrives()
    {
        // 20 MiB each way between the namespace's kernel TCP and a host socket; the namespace's
        // tap0 counters show how many frames crossed: with TSO both ways a frame carries tens of
        // KiB, without it at most the 1500-byte MTU.
        HostRequirements.RequireCommand("python3");
        const int Length = 20 * 1024 * 1024;
        var payload = new byte[Length];
        new Random(15).NextBytes(payload);
        var expected = Convert.ToHexStringLower(SHA256.HashData(payload));
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            string uploaded;
            using (var upload = await listener.AcceptTcpClientAsync())
            {
                var received = new MemoryStream();
                await upload.GetStream().CopyToAsync(received);
                uploaded = Convert.ToHexStringLower(SHA256.HashData(received.ToArray()));
            }

            using var download = await listener.AcceptTcpClientAsync();
            await download.GetStream().WriteAsync(payload);
            download.Client.Shutdown(SocketShutdown.Send);
            return uploaded;
        });

        var script = $$"""
            python3 - <<'PY'
            import hashlib, random, socket
            data = random.Random(15).randbytes({{Length}})
            print("upload", hashlib.sha256(data).hexdigest())
            s = socket.create_connection(("10.0.2.2", {{port}}), timeout=60)
            s.sendall(data)
            s.close()
            s = socket.create_connection(("10.0.2.2", {{port}}), timeout=60)
            h = hashlib.sha256()
            while True:
                b = s.recv(1 << 20)
                if not b: break
                h.update(b)
            s.close()
            print("download", h.hexdigest())
            stats = lambda name: int(open("/sys/class/net/tap0/statistics/" + name).read())
            print("tx", stats("tx_bytes") // max(stats("tx_packets"), 1), "rx", stats("rx_bytes") // max(stats("rx_packets"), 1))
            PY
            """;
        var result = await RunAsync(script);
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        var uploaded = await server;
        Assert.Contains($"upload {uploaded}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"download {expected}", result.Stdout, StringComparison.Ordinal);
        var sizes = result.Stdout.Split('\n').Single(l => l.StartsWith("tx ", StringComparison.Ordinal)).Split(' ');
        Assert.True(int.Parse(sizes[1], System.Globalization.CultureInfo.InvariantCulture) > 8000, $"bytes per frame from the namespace: {sizes[1]}");
        Assert.True(int.Parse(sizes[3], System.Globalization.CultureInfo.InvariantCulture) > 8000, $"bytes per frame into the namespace: {sizes[3]}");
    }

    [Fact]
    public async Task Iperf3_BothDirections_Completes()
    {
        HostRequirements.RequireCommand("iperf3");
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var server = ProcessRunner.Start("iperf3", ["--forceflush", "-s", "-B", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await server.WaitForLineAsync(l => l.Contains("listening", StringComparison.OrdinalIgnoreCase), TimeSpan.FromSeconds(30));
        var result = await RunAsync($"iperf3 -c 10.0.2.2 -p {port} -t 2 && sleep 0.5 && iperf3 -c 10.0.2.2 -p {port} -t 2 -R", "--mtu", "65520");
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Equal(2, result.Stdout.Split('\n').Count(l => l.Contains("receiver", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task HostForward_ReachesServerInTheNamespace()
    {
        HostRequirements.RequireCommand("busybox");
        var port = ForwardProbe.FreeLoopbackPort();
        var run = RunAsync("echo hello-from-guest | busybox nc -l -p 8080", "--forward", $"tcp:{port}:8080");
        var line = await ForwardProbe.ReadLineAsync(port);

        var result = await run;
        Assert.Equal("hello-from-guest", line);
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
    }
}
