using System.Net;
using System.Net.Sockets;
using System.Text;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// <c>netwire run --restrict --guestfwd ...</c> with the kernel's TCP in the namespace as the guest:
/// a connection to a guest forward reaches a host server, another reaches a new command's standard
/// input and output, a host forward reaches a server in the namespace, and a connection to the host
/// (even with --allow-host-loopback) is refused at once.
/// </summary>
[Trait("Category", "Host")]
public sealed class GuestForwardTests
{
    [Fact]
    public async Task RestrictedGuest_ReachesItsForwardsToAHostServerAndACommand_AndNothingElse()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        HostRequirements.RequireCommand("curl");
        HostRequirements.RequireCommand("python3");
        HostRequirements.RequireCommand("busybox");
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync(TestContext.Current.CancellationToken);
            var stream = client.GetStream();
            var buffer = new byte[4096];
            var request = "";
            while (!request.Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(buffer, TestContext.Current.CancellationToken);
                Assert.NotEqual(0, n);
                request += Encoding.ASCII.GetString(buffer, 0, n);
            }

            await stream.WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nfrom-host"u8.ToArray(), TestContext.Current.CancellationToken);
            client.Client.Shutdown(SocketShutdown.Send);
        });

        var forwardPort = ForwardProbe.FreeLoopbackPort();
        var script = $$"""
            echo hello-through-the-host-forward | busybox nc -l -p 8000 &
            curl -sS --max-time 20 http://10.0.2.200:8080/; echo " fwd=$?"
            python3 -c "import socket; s = socket.create_connection(('10.0.2.200', 7), 20); s.sendall(b'hello guestfwd'); s.shutdown(socket.SHUT_WR); print('cmd=' + s.makefile().read().strip())"
            curl -sS --max-time 20 http://10.0.2.2:{{port}}/; echo " outside=$?"
            wait
            """;
        var run = ProcessRunner.RunAsync("dotnet",
        [
            RepoPaths.NetwireDll, "run", "--restrict", "--allow-host-loopback",
            "--guestfwd", $"tcp:10.0.2.200:8080-127.0.0.1:{port}",
            "--guestfwd", "tcp:10.0.2.200:7-cmd:tr a-z A-Z",
            "--forward", $"tcp:{forwardPort}:8000",
            "--", "sh", "-c", script,
        ], TimeSpan.FromSeconds(120));

        // A host forward still reaches the restricted guest (QEMU's restrict=on keeps hostfwd).
        var forwarded = await ForwardProbe.ReadLineAsync(forwardPort);
        var result = await run;
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Equal("hello-through-the-host-forward", forwarded);
        Assert.Contains("from-host fwd=0", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("cmd=HELLO GUESTFWD", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("outside=7", result.Stdout, StringComparison.Ordinal);
        await server;
    }
}
