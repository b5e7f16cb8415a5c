using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Cli.Commands;
using NetWire.Cli.Slirp;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Stack;
using NetWire.Testing;

namespace NetWire.Cli.Tests.Slirp;

/// <summary><c>netwire slirp4netns</c>: its command line as Podman writes it, its help as Podman reads it, and the API socket's replies to bad requests.</summary>
public sealed class Slirp4netnsCommandTests
{
    [Fact]
    public void Parse_PodmansCommandLine_TakesEveryOption()
    {
        var options = Slirp4netnsCommand.Parse(
            ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c", "-e", "3", "-r", "4",
             "--api-socket", "/run/libpod/x.net", "--netns-type=path", "/run/netns/netns-1", "tap0"]);

        Assert.True(options.Configure);
        Assert.Equal(3, options.ExitFd);
        Assert.Equal(4, options.ReadyFd);
        Assert.Equal("/run/libpod/x.net", options.ApiSocket);
        Assert.Equal("/run/netns/netns-1", options.NetnsPath);
        Assert.Null(options.UsernsPath);
        Assert.Equal("tap0", options.TapName);
        Assert.Equal(65520, options.Gateway.Mtu);
        Assert.True(options.Gateway.Ipv6Enabled);
        Assert.False(options.Gateway.AllowHostLoopback);
        Assert.Equal(IPAddress.Parse("10.0.2.2"), options.Gateway.GatewayIp);
    }

    [Fact]
    public void Parse_PidTarget_WithCidrAndClusteredShortOptions()
    {
        var options = Slirp4netnsCommand.Parse(["-c6", "-m1400", "--cidr", "10.9.0.0/16", "--userns-path=/proc/7/ns/user", "--macaddress=02:00:00:00:00:01", "42"]);

        Assert.Equal("/proc/42/ns/net", options.NetnsPath);
        Assert.Equal("/proc/7/ns/user", options.UsernsPath);
        Assert.Equal("tap0", options.TapName);
        Assert.Equal(1400, options.Gateway.Mtu);
        Assert.True(options.Gateway.AllowHostLoopback);
        Assert.Equal(IPAddress.Parse("10.9.0.2"), options.Gateway.GatewayIp);
        Assert.Equal(IPAddress.Parse("10.9.0.3"), options.Gateway.DnsIp);
        Assert.Equal("02:00:00:00:00:01", options.Mac);
    }

    [Theory]
    [InlineData("--bogus", "1")]
    [InlineData("-x", "1")]
    [InlineData("--mtu")]
    [InlineData("--mtu=abc", "1")]
    [InlineData("--mtu=70000", "1")]
    [InlineData("--configure=yes", "1")]
    [InlineData("notapid")]
    [InlineData("1", "tap0", "extra")]
    [InlineData("--netns-type=file", "/x")]
    [InlineData("--cidr=10.0.2.0/28", "1")]
    [InlineData("--macaddress=02:00:00:00:00:01", "1")]
    [InlineData("-c", "--macaddress=02:00:00:00:00", "1")]
    [InlineData("--outbound-addr=203.0.113.250", "1")]
    [InlineData("--outbound-addr=::1", "1")]
    [InlineData("--outbound-addr=netwire-no-if0", "1")]
    [InlineData("--outbound-addr6=127.0.0.1", "-6", "1")]
    [InlineData("--outbound-addr6=2001:db8:ffff::1", "-6", "1")]
    [InlineData("--outbound-addr6=::1", "1")]
    [InlineData("--target-type=bess", "1")]
    public void Parse_BadCommandLine_IsAFormatError(params string[] args) =>
        Assert.Throws<FormatException>(() => Slirp4netnsCommand.Parse(args));

    [Fact]
    public void Parse_OutboundAddresses_AnAddressOrAnInterfaceName()
    {
        var options = Slirp4netnsCommand.Parse(["--outbound-addr=lo", "--outbound-addr6=::1", "-6", "1"]);

        Assert.Equal(IPAddress.Loopback, options.Gateway.OutboundAddress);
        Assert.Equal(IPAddress.IPv6Loopback, options.Gateway.OutboundAddress6);
        Assert.Null(Slirp4netnsCommand.Parse(["1"]).Gateway.OutboundAddress);
    }

    [Fact]
    public void OutboundAddress_Interface_TakesItsFirstAddressOfTheFamily_ButNoLinkLocal()
    {
        OutboundAddressOption.HostInterface[] interfaces =
        [
            new("eth0", [IPAddress.Parse("fe80::1"), IPAddress.Parse("192.0.2.9"), IPAddress.Parse("2001:db8::9"), IPAddress.Parse("192.0.2.10")]),
            new("wg0", [IPAddress.Parse("fe80::2")]),
            new("dummy0", []),
        ];

        Assert.Equal(IPAddress.Parse("192.0.2.9"), OutboundAddressOption.Resolve("eth0", AddressFamily.InterNetwork, "--outbound-addr", interfaces));
        Assert.Equal(IPAddress.Parse("2001:db8::9"), OutboundAddressOption.Resolve("eth0", AddressFamily.InterNetworkV6, "--outbound-addr6", interfaces));
        Assert.Equal(IPAddress.Parse("192.0.2.10"), OutboundAddressOption.Resolve("192.0.2.10", AddressFamily.InterNetwork, "--outbound-addr", interfaces));
        Assert.Equal("--outbound-addr6 'wg0': the interface has no IPv6 address outside fe80::/10", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("wg0", AddressFamily.InterNetworkV6, "--outbound-addr6", interfaces)).Message);
        Assert.Equal("--outbound-addr 'dummy0': the interface has no IPv4 address", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("dummy0", AddressFamily.InterNetwork, "--outbound-addr", interfaces)).Message);
        Assert.Equal("--outbound-addr '192.0.2.11' is not an address of this host", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("192.0.2.11", AddressFamily.InterNetwork, "--outbound-addr", interfaces)).Message);
        Assert.Equal("--outbound-addr6 'fe80::1': a link-local address reaches no outside destination", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("fe80::1", AddressFamily.InterNetworkV6, "--outbound-addr6", interfaces)).Message);
        Assert.Equal("--outbound-addr '2001:db8::9' is not an IPv4 address", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("2001:db8::9", AddressFamily.InterNetwork, "--outbound-addr", interfaces)).Message);
        Assert.Equal("--outbound-addr 'eth9' is neither an IPv4 address nor the name of an interface", Assert.Throws<FormatException>(() => OutboundAddressOption.Resolve("eth9", AddressFamily.InterNetwork, "--outbound-addr", interfaces)).Message);
    }

    [Theory]
    [InlineData("slirp4netns", "--outbound-addr=203.0.113.250", "1")]
    [InlineData("slirp4netns", "-6", "--outbound-addr6=netwire-no-if0", "1")]
    [InlineData("run", "--outbound-addr", "netwire-no-if0", "--", "true")]
    [InlineData("serve", "--outbound-addr6", "127.0.0.1")]
    public async Task BadOutboundAddress_IsAUsageError_WithTheReason(params string[] args)
    {
        var result = await ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--outbound-addr", result.Stderr, StringComparison.Ordinal);
        Assert.Matches("not an address of this host|neither an IPv[46] address nor the name of an interface|is not an IPv6 address", result.Stderr);
    }

    [Fact]
    public async Task Api_RequestThatNeverCompletes_GetsTheDeadlineError_AndTheConnectionCloses()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-s4api-");
        try
        {
            await using var gateway = new GatewayEnd("gateway", new GatewayOptions(), FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, NullLogger.Instance);
            var path = Path.Combine(directory.FullName, "api.sock");
            await using var api = new Slirp4netnsApi(path, gateway, IPAddress.Parse("10.0.2.100"), NullLogger.Instance);
            api.Start();

            // Half a request, and the sending side stays open: the server must not wait forever.
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
            await socket.SendAsync("{\"execute\": \"list_"u8.ToArray());
            var reply = new MemoryStream();
            var buffer = new byte[4096];
            int n;
            while ((n = await socket.ReceiveAsync(buffer).WaitAsync(TimeSpan.FromSeconds(60))) > 0)
            {
                reply.Write(buffer, 0, n);
            }

            var answer = System.Text.Json.Nodes.JsonNode.Parse(reply.ToArray())!;
            Assert.Equal("bad request: no complete request within 5 s", (string?)answer["error"]?["desc"]);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Help_ListsEveryOptionPodmanLooksFor()
    {
        // Podman 4.3 decides what to pass by searching slirp4netns --help for these words.
        foreach (var option in new[] { "--disable-host-loopback", "--mtu", "--enable-sandbox", "--enable-seccomp", "--cidr", "--outbound-addr", "--enable-ipv6", "--netns-type", "--userns-path", "--api-socket", "--exit-fd", "--ready-fd", "--configure" })
        {
            Assert.Contains(option, Slirp4netnsCommand.Help, StringComparison.Ordinal);
        }

        Assert.StartsWith("Usage: netwire slirp4netns [OPTION]... PID|PATH [TAPNAME]", Slirp4netnsCommand.Help, StringComparison.Ordinal);
        Assert.True(Slirp4netnsCommand.Parse(["--help"]).ShowHelp);
        Assert.True(Slirp4netnsCommand.Parse(["-v"]).ShowVersion);
    }

    [Theory]
    [InlineData("notjson", "bad request: cannot parse JSON")]
    [InlineData("", "bad request: cannot parse JSON")]
    [InlineData("[1,2]", "bad request: cannot parse JSON")]
    [InlineData("{\"foo\": 1}", "bad request: no execute found")]
    [InlineData("{\"execute\": 5}", "bad request: no execute found")]
    [InlineData("{\"execute\": \"foo\"}", "bad request: unknown execute")]
    [InlineData("{\"execute\": \"add_hostfwd\"}", "bad request: add_hostfwd: bad arguments")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"sctp\", \"host_port\": 1, \"guest_port\": 80}}", "bad request: add_hostfwd: bad arguments.proto")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_addr\": \"bogus\", \"host_port\": 1, \"guest_port\": 80}}", "bad request: add_hostfwd: bad arguments.host_addr")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_port\": \"80\", \"guest_port\": 80}}", "bad request: add_hostfwd: bad arguments.host_port")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_port\": 70000, \"guest_port\": 80}}", "bad request: add_hostfwd: bad arguments.host_port")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_port\": 8080}}", "bad request: add_hostfwd: bad arguments.guest_port")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_port\": 8080, \"guest_addr\": \"10.0.2.50\", \"guest_port\": 80}}", "bad request: add_hostfwd: bad arguments.guest_addr (NetWire forwards to the container's address 10.0.2.100 only)")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_port\": 8080, \"guest_port\": 80}}", "bad request: add_hostfwd: forward tcp:0.0.0.0:8080->guest:80: the gateway is not running")]
    [InlineData("{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_addr\": \"127.0.0.1\", \"host_port\": 8080, \"guest_addr\": \"\", \"guest_port\": 80}}", "bad request: add_hostfwd: forward tcp:127.0.0.1:8080->guest:80: the gateway is not running")]
    [InlineData("{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": 1}}", "bad request: remove_hostfwd: bad arguments.id")]
    [InlineData("{\"execute\": \"remove_hostfwd\", \"arguments\": {\"id\": \"1\"}}", "bad request: remove_hostfwd: bad arguments.id")]
    [InlineData("{\"execute\": \"remove_hostfwd\"}", "bad request: remove_hostfwd: bad arguments.id")]
    public async Task Api_BadRequest_GetsSlirp4netnsErrorShape(string request, string description)
    {
        var directory = Directory.CreateTempSubdirectory("netwire-s4api-");
        try
        {
            await using var gateway = new GatewayEnd("gateway", new GatewayOptions(), FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, NullLogger.Instance);
            await using var api = new Slirp4netnsApi(Path.Combine(directory.FullName, "api.sock"), gateway, IPAddress.Parse("10.0.2.100"), NullLogger.Instance);

            var reply = api.Handle(Encoding.UTF8.GetBytes(request));

            Assert.Equal(description, (string?)reply["error"]?["desc"]);
            Assert.Single(reply);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Api_ListWithNoForwards_IsEmptyEntries()
    {
        var directory = Directory.CreateTempSubdirectory("netwire-s4api-");
        try
        {
            await using var gateway = new GatewayEnd("gateway", new GatewayOptions(), FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, NullLogger.Instance);
            await using var api = new Slirp4netnsApi(Path.Combine(directory.FullName, "api.sock"), gateway, IPAddress.Parse("10.0.2.100"), NullLogger.Instance);

            Assert.Equal("{\"entries\":[]}", api.Handle("{\"execute\": \"list_hostfwd\"}"u8).ToJsonString());
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task WatchNamespace_TargetExitedBeforeTheWatchStarts_StillSeesItGone()
    {
        // The target's namespace is read at startup; the target then exits before the watch runs,
        // as when Podman ends the container the moment the Ready line is out on a busy machine.
        var target = ProcessRunner.Start("sleep", ["300"]);
        var path = $"/proc/{target.Pid}/ns/net";
        var identity = Slirp4netnsCommand.NamespaceIdentity(path);
        Assert.NotNull(identity);
        Assert.StartsWith("net:[", identity, StringComparison.Ordinal);
        await target.DisposeAsync();

        await Slirp4netnsCommand.WatchNamespaceAsync(path, identity, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(Slirp4netnsCommand.NamespaceIdentity(path));
    }
}
