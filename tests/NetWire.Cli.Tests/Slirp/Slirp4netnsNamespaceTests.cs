using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using NetWire.Testing;

namespace NetWire.Cli.Tests.Slirp;

/// <summary>
/// <c>netwire slirp4netns</c> against a real network namespace, driven the way Podman drives it:
/// exit and ready fds (FIFOs here), the API socket, the kernel's TCP stack inside as the
/// container, busybox httpd as its server, curl on the host.
/// </summary>
[Trait("Category", "Host")]
public sealed class Slirp4netnsNamespaceTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task Slirp4netns_ConfiguresTap_ServesApiForwards_AndExitsWhenTheExitFdCloses()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nsenter");
        HostRequirements.RequireCommand("curl");
        var busybox = HostRequirements.RequireCommand("busybox");
        var directory = Directory.CreateTempSubdirectory("netwire-s4-");
        await using var ns = await NetNamespace.CreateAsync();
        try
        {
            var api = Path.Combine(directory.FullName, "api.sock");
            var exitFifo = Path.Combine(directory.FullName, "exit");
            var readyFifo = Path.Combine(directory.FullName, "ready");
            (await ProcessRunner.RunAsync("mkfifo", [exitFifo, readyFifo])).EnsureSuccess();
            using var hostServer = new TcpListener(IPAddress.Loopback, 0);
            hostServer.Start();
            var hostPort = ((IPEndPoint)hostServer.LocalEndpoint).Port;

            await using var slirp = ProcessRunner.Start("sh", ["-c",
                $"exec dotnet {RepoPaths.NetwireDll} slirp4netns --disable-host-loopback --mtu=65520 --enable-sandbox --enable-seccomp --enable-ipv6 -c -e 3 -r 4 --api-socket {api} --netns-type=path /run/netns/{ns.Name} tap0 3<{exitFifo} 4>{readyFifo}"], new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Debug" });

            // The shell opens the exit FIFO for reading first, then the ready FIFO for writing.
            var exitWriter = await Task.Run(() => new FileStream(exitFifo, FileMode.Open, FileAccess.Write)).WaitAsync(s_wait);
            await using (exitWriter)
            {
                await using var readyReader = await Task.Run(() => new FileStream(readyFifo, FileMode.Open, FileAccess.Read)).WaitAsync(s_wait);
                var ready = new byte[1];
                Assert.Equal(1, await readyReader.ReadAsync(ready).AsTask().WaitAsync(s_wait));
                Assert.Equal((byte)'1', ready[0]);

                // -c: the address, the route, the MTU; -6: a SLAAC address from the gateway's router advertisement.
                var link = await ns.ExecAsync("ip", "-o", "addr", "show", "dev", "tap0");
                Assert.Contains("inet 10.0.2.100/24", link.Stdout, StringComparison.Ordinal);
                Assert.Contains("default via 10.0.2.2 dev tap0", (await ns.ExecAsync("ip", "route")).Stdout, StringComparison.Ordinal);
                Assert.Contains("mtu 65520", (await ns.ExecAsync("ip", "link", "show", "tap0")).Stdout, StringComparison.Ordinal);
                // Past duplicate address detection (-tentative), whose probe is how the gateway
                // learns the address before the container sends from it: the IPv6 forward below needs it.
                await WaitForAsync(async () => (await ns.ExecAsync("ip", "-6", "-o", "addr", "show", "dev", "tap0", "scope", "global", "-tentative")).Stdout.Contains("inet6 fd00::", StringComparison.Ordinal), "a SLAAC address in fd00::/64");

                // --disable-host-loopback: the host's 127.0.0.1 is not reachable at 10.0.2.2.
                var loopback = await ns.ExecShellAsync($"curl -sS --max-time 5 http://10.0.2.2:{hostPort}/; echo exit=$?");
                Assert.DoesNotContain("exit=0", loopback.Stdout, StringComparison.Ordinal);

                // The container's web server, published by the API as Podman's port_handler=slirp4netns does.
                var www = Directory.CreateDirectory(Path.Combine(directory.FullName, "www"));
                await File.WriteAllTextAsync(Path.Combine(www.FullName, "index.html"), "hello from the namespace\n");
                ns.Start(busybox, "httpd", "-f", "-p", "80", "-h", www.FullName);
                await ns.WaitForTcpListenerAsync(80, s_wait);
                var port = FreePort();
                var port6 = FreePort();
                var added = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": {port}, \"guest_port\": 80}}}}");
                var id = (int)added["return"]!["id"]!;
                var added6 = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"::1\", \"host_port\": {port6}, \"guest_port\": 80}}}}");
                Assert.NotNull(added6["return"]?["id"]);
                var curl = await CurlAsync($"http://127.0.0.1:{port}/");
                Assert.True(curl.Succeeded, curl.Stderr + string.Join('\n', slirp.Lines.Select(l => l.Text)));
                Assert.Equal("hello from the namespace\n", curl.Stdout);
                var curl6 = await CurlAsync($"http://[::1]:{port6}/");
                Assert.True(curl6.Succeeded, curl6.Stderr);
                Assert.Equal("hello from the namespace\n", curl6.Stdout);

                var duplicate = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": {port}, \"guest_port\": 80}}}}");
                Assert.StartsWith("bad request: add_hostfwd:", (string?)duplicate["error"]?["desc"], StringComparison.Ordinal);
                // A port another socket holds: the bind's failure, in slirp4netns's error shape (a
                // privileged port without the right to bind it fails the same way, with EACCES).
                using var holder = new TcpListener(IPAddress.Loopback, 0);
                holder.Start();
                var held = ((IPEndPoint)holder.LocalEndpoint).Port;
                var inUse = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": {held}, \"guest_port\": 80}}}}");
                Assert.Equal($"bad request: add_hostfwd: cannot listen for forward tcp:127.0.0.1:{held}->guest:80: Address already in use", (string?)inUse["error"]?["desc"]);
                Assert.Single(inUse);

                var list = await RequestAsync(api, "{\"execute\": \"list_hostfwd\"}");
                var entry = list["entries"]!.AsArray().Single(e => (int)e!["id"]! == id)!;
                Assert.Equal("{\"id\":" + id + ",\"proto\":\"tcp\",\"host_addr\":\"127.0.0.1\",\"host_port\":" + port + ",\"guest_addr\":\"10.0.2.100\",\"guest_port\":80}", entry.ToJsonString());
                Assert.Equal("{\"return\":{}}", (await RequestAsync(api, $"{{\"execute\": \"remove_hostfwd\", \"arguments\": {{\"id\": {id}}}}}")).ToJsonString());
                Assert.NotEqual(0, (await CurlAsync($"http://127.0.0.1:{port}/")).ExitCode);

                // An oversized request still gets its error reply, and the socket goes on serving.
                var oversized = await RequestAsync(api, "{\"execute\": \"" + new string('a', 10_000) + "\"}");
                Assert.Equal("bad request: request larger than 4096 bytes", (string?)oversized["error"]?["desc"]);
                Assert.NotNull((await RequestAsync(api, "{\"execute\": \"list_hostfwd\"}"))["entries"]);
            }

            // Podman stops slirp4netns by closing its end of the exit fd.
            Assert.Equal(0, await slirp.WaitForExitAsync(s_wait));
            Assert.False(File.Exists(api));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Slirp4netns_ExitsWhenTheNamespaceIsDeleted_AndWhenThePidExits()
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("nsenter");
        HostRequirements.RequireCommand("unshare");
        var ns = await NetNamespace.CreateAsync();
        await using (ns)
        {
            await using var byPath = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "slirp4netns", "-c", "--netns-type=path", $"/run/netns/{ns.Name}", "tap0"], new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Information" });
            await byPath.WaitForLineAsync(l => l.Contains("Ready: tap0", StringComparison.Ordinal), s_wait);
            await ns.DisposeAsync();
            Assert.Equal(0, await byPath.WaitForExitAsync(s_wait));
            Assert.Contains(byPath.Lines, l => l.Text.Contains("is gone", StringComparison.Ordinal));
        }

        await using var holder = ProcessRunner.Start("unshare", ["-n", "sleep", "300"]);
        await WaitForAsync(() => Task.FromResult(File.Exists($"/proc/{holder.Pid}/ns/net") && new FileInfo($"/proc/{holder.Pid}/ns/net").LinkTarget != new FileInfo("/proc/self/ns/net").LinkTarget), "unshare's namespace");
        await using var byPid = ProcessRunner.Start("dotnet", [RepoPaths.NetwireDll, "slirp4netns", "-c", holder.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)], new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Information" });
        await byPid.WaitForLineAsync(l => l.Contains("Ready: tap0", StringComparison.Ordinal), s_wait);
        await holder.DisposeAsync();
        Assert.Equal(0, await byPid.WaitForExitAsync(s_wait));
    }

    [Fact]
    public async Task Slirp4netns_MissingNamespace_IsAClearSetupError()
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, "slirp4netns", "--netns-type=path", "/run/netns/netwire-no-such-namespace", "tap0"], s_wait);
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("does not exist", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Api_PrivilegedPortWithoutTheRightToBindIt_IsABadRequest_AndTheApiServesOn()
    {
        // Root without CAP_NET_BIND_SERVICE binds below net.ipv4.ip_unprivileged_port_start as
        // any rootless slirp4netns does: not at all.
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("setpriv");
        var start = int.Parse(await File.ReadAllTextAsync("/proc/sys/net/ipv4/ip_unprivileged_port_start"), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(start > 1, $"net.ipv4.ip_unprivileged_port_start is {start}: no port is privileged on this host");
        var privileged = Enumerable.Range(1, start - 1).Reverse().First(PortIsFree);
        var directory = Directory.CreateTempSubdirectory("netwire-s4p-");
        await using var ns = await NetNamespace.CreateAsync();
        try
        {
            var api = Path.Combine(directory.FullName, "api.sock");
            await using var slirp = ProcessRunner.Start("setpriv", ["--bounding-set=-net_bind_service", "dotnet", RepoPaths.NetwireDll, "slirp4netns", "-a", api, "--netns-type=path", $"/run/netns/{ns.Name}", "tap0"],
                new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Information" });
            await slirp.WaitForLineAsync(l => l.Contains("Ready: tap0", StringComparison.Ordinal), s_wait);

            var refused = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": {privileged}, \"guest_port\": 80}}}}");
            Assert.Equal($"bad request: add_hostfwd: cannot listen for forward tcp:127.0.0.1:{privileged}->guest:80: Permission denied", (string?)refused["error"]?["desc"]);
            Assert.Single(refused);
            var added = await RequestAsync(api, $"{{\"execute\": \"add_hostfwd\", \"arguments\": {{\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": {FreePort()}, \"guest_port\": 80}}}}");
            Assert.NotNull(added["return"]?["id"]);
            Assert.Single((await RequestAsync(api, "{\"execute\": \"list_hostfwd\"}"))["entries"]!.AsArray());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static bool PortIsFree(int port)
    {
        try
        {
            using var probe = new TcpListener(IPAddress.Loopback, port);
            probe.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static Task<ProcessResult> CurlAsync(string url) =>
        ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "10", url], s_wait);

    /// <summary>One API request on its own connection, as Podman sends it (write, shut down, read the reply).</summary>
    internal static async Task<JsonObject> RequestAsync(string api, string request)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(api));
        await socket.SendAsync(Encoding.UTF8.GetBytes(request));
        socket.Shutdown(SocketShutdown.Send);
        var reply = new MemoryStream();
        var buffer = new byte[4096];
        int n;
        while ((n = await socket.ReceiveAsync(buffer)) > 0)
        {
            reply.Write(buffer, 0, n);
        }

        return (JsonObject)JsonNode.Parse(reply.ToArray())!;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + s_wait;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(200);
        }
    }
}
