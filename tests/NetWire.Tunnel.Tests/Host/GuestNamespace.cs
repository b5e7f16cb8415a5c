using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Stack;
using NetWire.Testing;

namespace NetWire.Tunnel.Tests.Host;

/// <summary>
/// The kernel as the guest: a network namespace whose only interface is a TAP attached to an
/// in-process user-mode gateway with the tunnel's virtual services, as <c>netwire run</c> sets
/// it up (address 10.0.2.100/24, default route via 10.0.2.2). Needs root.
/// </summary>
internal sealed class GuestNamespace : IAsyncDisposable
{
    public static readonly IPAddress GuestAddress = IPAddress.Parse("10.0.2.100");
    private static int s_counter;
    private readonly CancellationTokenSource _stop = new();
    private readonly TapEnd _tap;
    private readonly GatewayEnd _gateway;
    private Task? _running;

    private GuestNamespace(NetNamespace ns, TapEnd tap, GatewayEnd gateway)
    {
        Namespace = ns;
        _tap = tap;
        _gateway = gateway;
    }

    public NetNamespace Namespace { get; }

    public GatewayEnd Gateway => _gateway;

    public static async Task<GuestNamespace> StartAsync(GatewayOptions options)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("ip");
        var ns = await NetNamespace.CreateAsync();
        var tapName = $"nwtun{Environment.ProcessId % 10000}x{Interlocked.Increment(ref s_counter)}";
        var tap = new TapEnd("ns", tapName, FramePool.Shared, WireEnd.DefaultQueueCapacity, NullLogger.Instance);
        var gateway = new GatewayEnd("gateway", options, FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, NullLogger.Instance);
        var guest = new GuestNamespace(ns, tap, gateway);
        try
        {
            var link = new Link(tap, gateway, null, NullLogger.Instance);
            guest._running = link.RunAsync(guest._stop.Token);
            await WaitForTapUpAsync(tapName, guest._running);
            await RunIpAsync("link", "set", tapName, "netns", ns.Name);
            await RunIpAsync("-n", ns.Name, "link", "set", tapName, "name", "tap0");
            await RunIpAsync("-n", ns.Name, "link", "set", "tap0", "up");
            await RunIpAsync("-n", ns.Name, "addr", "add", $"{GuestAddress}/24", "dev", "tap0");
            await RunIpAsync("-n", ns.Name, "route", "add", "default", "via", options.GatewayIp.ToString(), "dev", "tap0");
            var link0 = await ns.ExecAsync("cat", "/sys/class/net/tap0/address");
            link0.EnsureSuccess();
            gateway.AssumeGuest(GuestAddress, null, Convert.FromHexString(link0.Stdout.Trim().Replace(":", string.Empty, StringComparison.Ordinal)));
            return guest;
        }
        catch
        {
            await guest.DisposeAsync();
            throw;
        }
    }

    private static async Task RunIpAsync(params string[] args) =>
        (await ProcessRunner.RunAsync("ip", args)).EnsureSuccess();

    private static async Task WaitForTapUpAsync(string tap, Task running)
    {
        var flags = $"/sys/class/net/{tap}/flags";
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (running.IsCompleted)
            {
                await running;
                throw new InvalidOperationException($"the TAP {tap} closed before it was set up");
            }

            if (File.Exists(flags) && (Convert.ToInt32((await File.ReadAllTextAsync(flags)).Trim(), 16) & 1) != 0)
            {
                return;
            }

            await Task.Delay(10);
        }

        throw new TimeoutException($"the TAP {tap} did not come up");
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_running is not null)
        {
            try
            {
                await _running;
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or OperationCanceledException)
            {
            }
        }

        await _tap.DisposeAsync();
        await _gateway.DisposeAsync();
        await Namespace.DisposeAsync();
        _stop.Dispose();
    }
}
