using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control;
using NetWire.Devices;
using NetWire.Spice;
using NetWire.Spice.Link;
using NetWire.Stack;

namespace NetWire.Appliance.Tests;

/// <summary>The appliance of <c>netwire serve</c>, assembled in process: its parts, their start failures, and <c>quit</c>.</summary>
public sealed class ServeApplianceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("netwire-appliance-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Tunnel_AddsTheTunnelChannelToTheSpiceServer()
    {
        var wire = new WireSetup(WireSpec.Parse($"stream:unix:{Path.Combine(_dir, "g.sock")}", WireSide.Guest), null, new GatewayOptions(), null, null, 16);
        var spice = new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) };
        using var stop = new CancellationTokenSource();
        await using var appliance = new ServeAppliance(new ServeSetup(wire, spice, Tickets()) { Tunnel = true }, NullLoggerFactory.Instance, stop);

        var channel = Assert.Single(spice.Channels);
        Assert.Equal(SpiceChannelType.Tunnel, channel.Type);
        Assert.NotNull(appliance.Wire);
    }

    [Fact]
    public async Task StartAsync_SpicePortTaken_NamesThePartAndTheAddress()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var endPoint = (IPEndPoint)taken.LocalEndPoint!;
        using var stop = new CancellationTokenSource();
        await using var appliance = new ServeAppliance(new ServeSetup(null, new SpiceServerOptions { EndPoint = endPoint }, Tickets()), NullLoggerFactory.Instance, stop);

        var failure = await appliance.StartAsync(TestContext.Current.CancellationToken);

        Assert.NotNull(failure);
        Assert.StartsWith($"SPICE server: cannot listen on {endPoint}: ", failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quit_OnTheControlSocket_StopsTheAppliance()
    {
        var qmp = Path.Combine(_dir, "qmp.sock");
        using var stop = new CancellationTokenSource();
        var setup = new ServeSetup(null, new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0) }, Tickets())
        {
            Control = ControlEndpoint.Parse("unix:" + qmp),
        };
        await using var appliance = new ServeAppliance(setup, NullLoggerFactory.Instance, stop);
        Assert.Null(await appliance.StartAsync(TestContext.Current.CancellationToken));
        var running = appliance.RunAsync(stop.Token);
        Assert.False(running.IsCompleted);

        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(qmp), TestContext.Current.CancellationToken);
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        Assert.Contains("\"QMP\"", await reader.ReadLineAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        await stream.WriteAsync("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n"u8.ToArray(), TestContext.Current.CancellationToken);

        Assert.False(await running.WaitAsync(TimeSpan.FromSeconds(20), TestContext.Current.CancellationToken));
        Assert.True(stop.IsCancellationRequested);
    }

    private static TicketAuthority Tickets()
    {
        var tickets = new TicketAuthority(TimeProvider.System);
        tickets.SetPassword("s3cret");
        return tickets;
    }
}
