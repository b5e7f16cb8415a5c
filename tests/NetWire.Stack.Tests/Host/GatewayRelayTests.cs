using System.Net;
using System.Net.Sockets;
using System.Text;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// Pings relayed through unprivileged ICMP sockets, and UDP host forwards, with <c>netwire run</c>
/// and the Linux stack in its namespace as the guest.
/// </summary>
/// <remarks>
/// The ping tests run <c>netwire run</c> inside a namespace the test creates (the "host"), because
/// net.ipv4.ping_group_range is a per-namespace setting: the test sets it there and never touches
/// the real host's. The pinged address is one that "host" namespace owns (on its lo).
/// </remarks>
[Trait("Category", "Host")]
public sealed class GatewayRelayTests
{
    private const string HostAddress = "198.51.100.1";

    private static async Task<NetNamespace> HostNamespaceAsync(string pingGroupRange)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        HostRequirements.RequireCommand("busybox");
        var ns = await NetNamespace.CreateAsync();
        try
        {
            (await ns.ExecShellAsync(
                $"ip addr add {HostAddress}/32 dev lo && echo '{pingGroupRange}' > /proc/sys/net/ipv4/ping_group_range && cat /proc/sys/net/ipv4/ping_group_range"))
                .EnsureSuccess();
        }
        catch
        {
            await ns.DisposeAsync();
            throw;
        }

        return ns;
    }

    [Fact]
    public async Task Ping_ToAnAddressOfTheHost_IsRelayed_WhenPingGroupRangeAllowsIt()
    {
        await using var host = await HostNamespaceAsync("0 2147483647");
        var result = await host.ExecAsync(
            ["dotnet", RepoPaths.NetwireDll, "run", "--", "busybox", "ping", "-c", "3", "-W", "10", HostAddress],
            TimeSpan.FromSeconds(120));
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Contains($"bytes from {HostAddress}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("3 packets received", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ping_WhenPingGroupRangeForbidsIt_FailsAndTheGatewaySaysWhy()
    {
        await using var host = await HostNamespaceAsync("1 0");
        var result = await host.ExecAsync(
            ["dotnet", RepoPaths.NetwireDll, "run", "--", "busybox", "ping", "-c", "2", "-W", "2", HostAddress],
            TimeSpan.FromSeconds(120));
        Assert.False(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Contains("0 packets received", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("no unprivileged ICMP socket", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("ping_group_range", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UdpForward_TwoHostClients_EachGetTheGuestServersReply()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        HostRequirements.RequireCommand("python3");
        using var probe = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
        probe.Dispose();

        // The guest's server answers each datagram with "reply:<text>:<client address>" and ends on "quit".
        const string Server = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 5353))
            while True:
                data, peer = s.recvfrom(65535)
                if data == b"quit":
                    break
                s.sendto(b"reply:" + data + (":%s" % peer[0]).encode(), peer)
            """;
        string[] args = ["dotnet", RepoPaths.NetwireDll, "run", "--forward", $"udp:{port}:5353", "--", "python3", "-c", Server];
        var run = ProcessRunner.RunAsync(args[0], args[1..], TimeSpan.FromSeconds(120));

        using var first = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        using var second = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var target = new IPEndPoint(IPAddress.Loopback, port);
        var a = await ExchangeAsync(first, target, "one", run);
        var b = await ExchangeAsync(second, target, "two", run);
        var again = await ExchangeAsync(first, target, "three", run);
        await first.SendAsync(Encoding.ASCII.GetBytes("quit"), target);
        var result = await run;

        // The guest sees its clients as the gateway address.
        Assert.Equal("reply:one:10.0.2.2", a);
        Assert.Equal("reply:two:10.0.2.2", b);
        Assert.Equal("reply:three:10.0.2.2", again);
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
    }

    /// <summary>Sends until a reply arrives (the guest's server may not be bound yet), up to 60 s.</summary>
    private static async Task<string> ExchangeAsync(UdpClient client, IPEndPoint target, string text, Task<ProcessResult> run)
    {
        for (var attempt = 0; attempt < 120; attempt++)
        {
            Assert.False(run.IsCompleted, "netwire run ended early: " + (run.IsCompleted ? (await run).Stderr : ""));
            await client.SendAsync(Encoding.ASCII.GetBytes(text), target);
            using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
            try
            {
                var reply = await client.ReceiveAsync(wait.Token);
                var answer = Encoding.ASCII.GetString(reply.Buffer);
                if (answer.StartsWith($"reply:{text}:", StringComparison.Ordinal))
                {
                    return answer;
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (SocketException)
            {
                // Port unreachable before the forward listens.
                await Task.Delay(100);
            }
        }

        Assert.Fail($"no reply to '{text}' through the UDP forward");
        return "";
    }
}
