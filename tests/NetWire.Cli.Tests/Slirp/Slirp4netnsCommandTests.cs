using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
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
    [InlineData("--outbound-addr=10.1.1.1", "1")]
    [InlineData("--outbound-addr6=fd00::9", "1")]
    [InlineData("--target-type=bess", "1")]
    public void Parse_BadCommandLine_IsAFormatError(params string[] args) =>
        Assert.Throws<FormatException>(() => Slirp4netnsCommand.Parse(args));

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
