using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Spice.Link;
using NetWire.Testing;

namespace NetWire.Spice.Tests;

/// <summary>An in-process <see cref="SpiceServer"/> on 127.0.0.1 and a free port.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    public const string Password = "s3cret";

    private TestServer(SpiceServer server) => Server = server;

    public SpiceServer Server { get; }

    public IPEndPoint EndPoint => Server.LocalEndPoint;

    public static TestServer Start(Action<SpiceServerOptions>? configure = null, Action<TicketAuthority>? tickets = null, TimeProvider? time = null)
    {
        var options = new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), Time = time ?? TimeProvider.System };
        configure?.Invoke(options);
        var authority = new TicketAuthority(options.Time);
        authority.SetPassword(Password);
        tickets?.Invoke(authority);
        var server = new SpiceServer(options, authority, NullLoggerFactory.Instance);
        server.Start();
        return new TestServer(server);
    }

    public Task<RawSpiceClient> ConnectAsync() => RawSpiceClient.ConnectAsync(EndPoint);

    public ValueTask DisposeAsync() => Server.DisposeAsync();
}
