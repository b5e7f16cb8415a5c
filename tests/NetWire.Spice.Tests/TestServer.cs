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

    /// <summary>The TLS port, when <see cref="StartTls"/> made one.</summary>
    public IPEndPoint TlsEndPoint => Server.TlsEndPoint ?? throw new InvalidOperationException("no TLS port");

    /// <summary>A server with a plaintext port and a TLS port using <paramref name="x509Dir"/>'s server certificate.</summary>
    public static TestServer StartTls(string x509Dir, Action<SpiceServerOptions>? configure = null, IReadOnlyList<System.Net.Security.TlsCipherSuite>? ciphers = null) =>
        Start(options =>
        {
            options.TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
            options.Tls = new NetWire.Core.Tls.TlsSettings(NetWire.Core.Tls.X509Credentials.Load(x509Dir, NetWire.Core.Tls.TlsRole.Server, DateTimeOffset.UtcNow), ciphers);
            configure?.Invoke(options);
        });

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
