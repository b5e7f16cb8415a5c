using System.Text.Json.Nodes;
using NetWire.Testing;

namespace NetWire.Cli.Tests.Slirp;

/// <summary>
/// <c>--outbound-addr</c> and <c>--outbound-addr6</c> against real peers. NetWire runs inside a
/// namespace of the test's ("outer") whose interfaces carry several addresses, so nothing on
/// the host changes: a server there on the first address sees the container's TCP connections and
/// UDP datagrams come from the outbound address, not from the address the kernel would pick (the
/// server's own). The container is a second namespace driven as Podman drives slirp4netns, or the
/// one <c>netwire run</c> makes.
/// </summary>
[Trait("Category", "Host")]
public sealed class OutboundAddressNamespaceTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(90);

    /// <summary>Prints each TCP client's and UDP sender's address; echoes datagrams; answers DNS on 127.0.0.1:53 the same way.</summary>
    private const string ServerScript = """
        import selectors, socket, sys
        sel = selectors.DefaultSelector()
        for fam, host in ((socket.AF_INET, '198.51.100.1'), (socket.AF_INET6, '2001:db8:5::1')):
            t = socket.socket(fam); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((host, 7001)); t.listen(16); sel.register(t, selectors.EVENT_READ, 'tcp')
            u = socket.socket(fam, socket.SOCK_DGRAM); u.bind((host, 7002)); sel.register(u, selectors.EVENT_READ, 'udp')
        d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); d.bind(('127.0.0.1', 53)); sel.register(d, selectors.EVENT_READ, 'dns')
        print('listening', flush=True)
        while True:
            for key, _ in sel.select():
                if key.data == 'tcp':
                    c, peer = key.fileobj.accept(); print('tcp', peer[0], flush=True); c.close()
                else:
                    data, peer = key.fileobj.recvfrom(2048); print(key.data, peer[0], flush=True); key.fileobj.sendto(data, peer)
        """;

    /// <summary>From the container: TCP and UDP to the server's IPv4 and IPv6 address, and a query to the DNS address.</summary>
    private const string ClientScript = """
        import socket, sys
        def udp(fam, host, port, wait):
            s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(wait); s.sendto(b'hello', (host, port))
            try:
                s.recvfrom(2048); print('reply', host, flush=True)
            except socket.timeout:
                print('no-reply', host, flush=True)
        for fam, host in ((socket.AF_INET, '198.51.100.1'), (socket.AF_INET6, '2001:db8:5::1')):
            t = socket.create_connection((host, 7001), timeout=20); t.close(); print('connected', host, flush=True)
            udp(fam, host, 7002, 20)
        udp(socket.AF_INET, '10.0.2.3', 53, 3)
        """;

    [Fact]
    public async Task Slirp4netns_OutboundAddresses_AreTheSourceOfTcpAndUdp_AndTheTapHasTheMac_AndDisableDnsDropsQueries()
    {
        await using var setup = await Setup.CreateAsync();
        await using var container = await NetNamespace.CreateAsync();
        await using var slirp = setup.Outer.Start(
            ["dotnet", RepoPaths.NetwireDll, "slirp4netns", "--outbound-addr=198.51.100.2", "--outbound-addr6=2001:db8:5::2", "--disable-dns", "-6", "-c",
             "--macaddress=02:00:5e:00:53:42", "--netns-type=path", $"/run/netns/{container.Name}", "tap0"],
            new Dictionary<string, string?> { ["NETWIRE_LOG_LEVEL"] = "Information" });
        await slirp.WaitForLineAsync(l => l.Contains("Ready: tap0", StringComparison.Ordinal), s_wait);

        // --macaddress with -c: the TAP has that address.
        var link = JsonNode.Parse((await container.ExecAsync("ip", "-j", "link", "show", "tap0")).Stdout)!.AsArray().Single()!;
        Assert.Equal("02:00:5e:00:53:42", (string?)link["address"]);

        // The SLAAC address and the default route come from the gateway's router advertisement.
        var deadline = DateTime.UtcNow + s_wait;
        while (!(await container.ExecAsync("ip", "-6", "-o", "addr", "show", "dev", "tap0", "scope", "global", "-tentative")).Stdout.Contains("inet6 fd00::", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "no SLAAC address");
            await Task.Delay(200);
        }

        var client = await container.ExecAsync(["python3", "-c", ClientScript], s_wait);
        Assert.True(client.Succeeded, client.Stdout + client.Stderr + slirp.FormattedOutput);
        Assert.Contains("reply 198.51.100.1", client.Stdout, StringComparison.Ordinal);
        Assert.Contains("reply 2001:db8:5::1", client.Stdout, StringComparison.Ordinal);

        // --disable-dns: the resolver of the outer namespace (127.0.0.1, which answers netwire run
        // below) hears nothing, and the container gets no answer.
        Assert.Contains("no-reply 10.0.2.3", client.Stdout, StringComparison.Ordinal);
        var heard = await setup.WaitForPeersAsync(4);
        Assert.Equal(["tcp 198.51.100.2", "tcp 2001:db8:5::2", "udp 198.51.100.2", "udp 2001:db8:5::2"], heard.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(setup.Server.StdoutLines, l => l.StartsWith("dns", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Run_OutboundInterfaceName_IsItsFirstAddress_AndAResolverOnLoopbackKeepsALoopbackSource()
    {
        await using var setup = await Setup.CreateAsync();
        var run = await setup.Outer.ExecAsync(
            ["dotnet", RepoPaths.NetwireDll, "run", "--outbound-addr", "nwo1", "--outbound-addr6", "nwo1", "--", "python3", "-c", ClientScript], s_wait);

        Assert.True(run.Succeeded, run.Stdout + run.Stderr);
        Assert.Contains("reply 198.51.100.1", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("reply 2001:db8:5::1", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("reply 10.0.2.3", run.Stdout, StringComparison.Ordinal);
        var heard = await setup.WaitForPeersAsync(5);

        // nwo1's addresses; the DNS query went to the loopback resolver from a loopback address.
        Assert.Equal(["dns 127.0.0.1", "tcp 2001:db8:6::7", "tcp 203.0.113.7", "udp 2001:db8:6::7", "udp 203.0.113.7"], heard.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("--outbound-addr=nwo2", "--outbound-addr 'nwo2': the interface has no IPv4 address")]
    [InlineData("--outbound-addr6=nwo2", "--outbound-addr6 'nwo2': the interface has no IPv6 address outside fe80::/10")]
    [InlineData("--outbound-addr=198.51.100.3", "--outbound-addr '198.51.100.3' is not an address of this host")]
    [InlineData("--outbound-addr6=2001:db8:6::7", null)]
    public async Task Slirp4netns_OutboundValue_IsCheckedAgainstTheNamespacesInterfaces(string option, string? error)
    {
        await using var setup = await Setup.CreateAsync();
        var result = await setup.Outer.ExecAsync(["dotnet", RepoPaths.NetwireDll, "slirp4netns", option, "-6", "--netns-type=path", "/run/netns/netwire-no-such-namespace", "tap0"], s_wait);

        if (error is null)
        {
            // A good value gets past the command line: the missing namespace is what stops it (exit 3).
            Assert.Equal(3, result.ExitCode);
            Assert.Contains("does not exist", result.Stderr, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(2, result.ExitCode);
            Assert.Contains(error, result.Stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// The outer namespace: veth nwo0 (198.51.100.1 and .2, 2001:db8:5::1 and ::2), nwo1
    /// (203.0.113.7, 2001:db8:6::7), nwo2 (down, no address), each with its peer nwoNp beside it
    /// (not every kernel has dummy interfaces); its resolv.conf names 127.0.0.1,
    /// where the server answers; the server runs on nwo0's first addresses.
    /// </summary>
    private sealed class Setup : IAsyncDisposable
    {
        private readonly string _etc;

        private Setup(NetNamespace outer, string etc)
        {
            Outer = outer;
            _etc = etc;
        }

        public NetNamespace Outer { get; }

        public ManagedProcess Server { get; private set; } = null!;

        public static async Task<Setup> CreateAsync()
        {
            HostRequirements.RequireRoot();
            HostRequirements.RequireCommand("nsenter");
            HostRequirements.RequireCommand("python3");
            var outer = await NetNamespace.CreateAsync();
            var setup = new Setup(outer, $"/etc/netns/{outer.Name}");
            try
            {
                // ip netns exec bind-mounts this over /etc/resolv.conf for what runs in the namespace.
                Directory.CreateDirectory(setup._etc);
                await File.WriteAllTextAsync(Path.Combine(setup._etc, "resolv.conf"), "nameserver 127.0.0.1\n");
                var script = string.Join("; ",
                    "ip link add name nwo0 type veth peer name nwo0p", "ip link set nwo0p up", "ip link set nwo0 up",
                    "ip addr add 198.51.100.1/24 dev nwo0", "ip addr add 198.51.100.2/24 dev nwo0",
                    "ip -6 addr add 2001:db8:5::1/64 dev nwo0 nodad", "ip -6 addr add 2001:db8:5::2/64 dev nwo0 nodad",
                    "ip link add name nwo1 type veth peer name nwo1p", "ip link set nwo1p up", "ip link set nwo1 up",
                    "ip addr add 203.0.113.7/24 dev nwo1", "ip -6 addr add 2001:db8:6::7/64 dev nwo1 nodad",
                    "ip link add name nwo2 type veth peer name nwo2p");
                (await outer.ExecShellAsync("set -e; " + script)).EnsureSuccess();
                setup.Server = outer.Start("python3", "-u", "-c", ServerScript);
                await setup.Server.WaitForLineAsync(l => l == "listening", s_wait);
                return setup;
            }
            catch
            {
                await setup.DisposeAsync();
                throw;
            }
        }

        /// <summary>The server's lines after "listening" once there are <paramref name="count"/>: "tcp ADDR", "udp ADDR", "dns ADDR".</summary>
        public async Task<string[]> WaitForPeersAsync(int count)
        {
            var deadline = DateTime.UtcNow + s_wait;
            while (true)
            {
                var peers = Server.StdoutLines.Where(l => l != "listening").ToArray();
                if (peers.Length >= count)
                {
                    return peers;
                }

                Assert.True(DateTime.UtcNow < deadline, $"the server heard only: {string.Join(", ", peers)}");
                await Task.Delay(100);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Outer.DisposeAsync();
            Directory.Delete(_etc, recursive: true);
        }
    }
}
