using System.Net;
using System.Net.Sockets;
using System.Text;
using NetWire.Testing;

namespace NetWire.Stack.Tests.Host;

/// <summary>
/// Pings relayed through unprivileged ICMP and ICMPv6 sockets, and UDP host forwards of both
/// families, with <c>netwire run</c> and the Linux stack in its namespace as the guest.
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

    private const string HostAddress6 = "2001:db8:100::1";

    private static async Task<NetNamespace> HostNamespaceAsync(string pingGroupRange)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        HostRequirements.RequireCommand("busybox");
        var ns = await NetNamespace.CreateAsync();
        try
        {
            (await ns.ExecShellAsync(
                $"ip addr add {HostAddress}/32 dev lo && ip -6 addr add {HostAddress6}/128 dev lo nodad && " +
                $"echo '{pingGroupRange}' > /proc/sys/net/ipv4/ping_group_range && cat /proc/sys/net/ipv4/ping_group_range"))
                .EnsureSuccess();
        }
        catch
        {
            await ns.DisposeAsync();
            throw;
        }

        return ns;
    }

    [Theory]
    [InlineData(HostAddress)]
    [InlineData(HostAddress6)] // through an unprivileged ICMPv6 socket, which the same sysctl allows
    public async Task Ping_ToAnAddressOfTheHost_IsRelayed_WhenPingGroupRangeAllowsIt(string address)
    {
        await using var host = await HostNamespaceAsync("0 2147483647");
        string[] ping = address.Contains(':', StringComparison.Ordinal) ? ["busybox", "ping", "-6"] : ["busybox", "ping"];
        var result = await host.ExecAsync(
            ["dotnet", RepoPaths.NetwireDll, "run", "--", .. ping, "-c", "3", "-W", "10", address],
            TimeSpan.FromSeconds(120));
        Assert.True(result.Succeeded, result.Stdout + result.Stderr);
        Assert.Contains($"bytes from {address}", result.Stdout, StringComparison.Ordinal);
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UdpForward_TwoHostClients_EachGetTheGuestServersReply(bool ipv6)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        HostRequirements.RequireCommand("python3");
        var loopback = ipv6 ? IPAddress.IPv6Loopback : IPAddress.Loopback;
        using var probe = new UdpClient(new IPEndPoint(loopback, 0));
        var port = ((IPEndPoint)probe.Client.LocalEndPoint!).Port;
        probe.Dispose();

        // The guest's server answers each datagram with "reply:<text>:<client address>" and ends on "quit".
        var server = $$"""
            import socket
            s = socket.socket(socket.{{(ipv6 ? "AF_INET6" : "AF_INET")}}, socket.SOCK_DGRAM)
            s.bind(("{{(ipv6 ? "::" : "0.0.0.0")}}", 5353))
            while True:
                data, peer = s.recvfrom(65535)
                if data == b"quit":
                    break
                s.sendto(b"reply:" + data + (":%s" % peer[0]).encode(), peer)
            """;

        // An IPv6 forward (udp:[::1]:PORT:5353) reaches the guest over IPv6.
        var forward = ipv6 ? $"udp:[::1]:{port}:5353" : $"udp:{port}:5353";
        string[] args = ["dotnet", RepoPaths.NetwireDll, "run", "--forward", forward, "--", "python3", "-c", server];
        var run = ProcessRunner.RunAsync(args[0], args[1..], TimeSpan.FromSeconds(120));

        using var first = new UdpClient(new IPEndPoint(loopback, 0));
        using var second = new UdpClient(new IPEndPoint(loopback, 0));
        var target = new IPEndPoint(loopback, port);
        var a = await ExchangeAsync(first, target, "one", run);
        var b = await ExchangeAsync(second, target, "two", run);
        var again = await ExchangeAsync(first, target, "three", run);
        await first.SendAsync(Encoding.ASCII.GetBytes("quit"), target);
        var result = await run;

        // The guest sees its clients as the gateway address of the family.
        var gateway = ipv6 ? "fd00::2" : "10.0.2.2";
        Assert.Equal($"reply:one:{gateway}", a);
        Assert.Equal($"reply:two:{gateway}", b);
        Assert.Equal($"reply:three:{gateway}", again);
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
