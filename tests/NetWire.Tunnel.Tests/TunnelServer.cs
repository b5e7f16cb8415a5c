using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Spice.Link;
using NetWire.Stack;
using NetWire.Tunnel.Client;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// An in-process SPICE server on 127.0.0.1 serving the tunnel channel, bound to a
/// <see cref="TunnelGateway"/> for the default guest network (10.0.2.0/24).
/// </summary>
internal sealed class TunnelServer : IAsyncDisposable
{
    public const string Password = "tunnel-pw";

    private TunnelServer(Spice.SpiceServer server, TunnelGateway gateway, GatewayOptions network)
    {
        Server = server;
        Gateway = gateway;
        Network = network;
    }

    public Spice.SpiceServer Server { get; }

    public TunnelGateway Gateway { get; }

    /// <summary>The guest network, with <see cref="GatewayOptions.VirtualServices"/> set to <see cref="Gateway"/>.</summary>
    public GatewayOptions Network { get; }

    public IPEndPoint EndPoint => Server.LocalEndPoint;

    /// <summary>The TLS port, when started with an x509 directory.</summary>
    public IPEndPoint TlsEndPoint => Server.TlsEndPoint ?? throw new InvalidOperationException("no TLS port");

    /// <param name="x509Dir">Also serve a TLS port with this directory's server certificate.</param>
    public static TunnelServer Start(Action<TunnelOptions>? configure = null, Func<IPAddress?>? guestAddress = null, int port = 0, string? x509Dir = null)
    {
        var tunnelOptions = new TunnelOptions();
        configure?.Invoke(tunnelOptions);
        var network = new GatewayOptions();
        var gateway = new TunnelGateway(network, guestAddress ?? (() => null), tunnelOptions);
        var options = new Spice.SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, port), PingInterval = TimeSpan.Zero };
        options.Channels.Add(new TunnelChannelService(gateway, NullLoggerFactory.Instance));
        if (x509Dir is not null)
        {
            options.TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
            options.Tls = new Core.Tls.TlsSettings(Core.Tls.X509Credentials.Load(x509Dir, Core.Tls.TlsRole.Server, DateTimeOffset.UtcNow));
        }

        var tickets = new TicketAuthority(TimeProvider.System);
        tickets.SetPassword(Password);
        var server = new Spice.SpiceServer(options, tickets, NullLoggerFactory.Instance);
        server.Start();
        return new TunnelServer(server, gateway, network with { VirtualServices = gateway });
    }

    /// <summary>A tunnel client for <paramref name="services"/>; its published addresses go to the returned map.</summary>
    public (TunnelClient Client, Published Published) CreateClient(params TunnelServiceSpec[] services)
    {
        var published = new Published();
        var options = new TunnelClientOptions("127.0.0.1", EndPoint.Port, Encoding.UTF8.GetBytes(Password), services)
        {
            MinBackoff = TimeSpan.FromMilliseconds(50),
            MaxBackoff = TimeSpan.FromMilliseconds(500),
        };
        return (new TunnelClient(options, published.Add, NullLogger.Instance), published);
    }

    /// <summary>Opens a connection as the gateway would for a guest SYN to <paramref name="address"/>:<paramref name="port"/>.</summary>
    public Task<Socket> ConnectAsGuestAsync(IPAddress address, ushort port, ushort guestPort = 40000) =>
        Gateway.ConnectAsync(Core.Net.Ip.ToUInt(IPAddress.Parse("10.0.2.100")), guestPort, Core.Net.Ip.ToUInt(address), port, TestContext.Current.CancellationToken);

    public ValueTask DisposeAsync() => Server.DisposeAsync();

    /// <summary>The virtual addresses a client was given, by service name; waitable.</summary>
    internal sealed class Published
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<string, IPAddress> _addresses = [];
        private int _count;

        /// <summary>SERVICE_IP_MAP messages seen (counts re-adds after a reconnect).</summary>
        public int Count => Volatile.Read(ref _count);

        public void Add(TunnelServiceSpec spec, IPAddress address)
        {
            lock (_gate)
            {
                _addresses[spec.Name] = address;
                _count++;
            }
        }

        public async Task<IPAddress> WaitAsync(string name, int minimumCount = 0)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                lock (_gate)
                {
                    if (_addresses.TryGetValue(name, out var address) && _count >= minimumCount)
                    {
                        return address;
                    }
                }

                await Task.Delay(20, timeout.Token);
            }
        }
    }
}
