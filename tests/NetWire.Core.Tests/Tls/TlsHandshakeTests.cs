using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using NetWire.Core.Tls;
using NetWire.Testing;

namespace NetWire.Core.Tests.Tls;

/// <summary>
/// Accepting and connecting over loopback sockets: a secured handshake, plaintext on a TLS
/// endpoint seen from its first bytes (and not consumed), mutual TLS refusing a client without a
/// certificate and one from another CA, and a client refusing a server of another CA or name.
/// </summary>
public sealed class TlsHandshakeTests(TlsPkiFixture pki) : IClassFixture<TlsPkiFixture>
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static DateTimeOffset Now => DateTimeOffset.UtcNow;

    [Fact]
    public async Task ServerOnly_Secures_AndTheClientChecksTheCaAndHost()
    {
        var server = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now));
        var client = new TlsSettings(X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now));
        var (accepted, connected) = await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", client, Token));
        Assert.Equal(TlsAcceptOutcome.Secured, accepted.Outcome);
        Assert.Matches("^TLS 1\\.[23] ", accepted.Detail);
        await using (accepted.Stream!)
        await using (connected)
        {
            await connected.WriteAsync("ping"u8.ToArray(), Token);
            var buffer = new byte[4];
            await accepted.Stream!.ReadExactlyAsync(buffer, Token);
            Assert.Equal("ping"u8.ToArray(), buffer);
        }
    }

    [Fact]
    public async Task ClientOfAnotherCa_RefusesTheServer_SayingWhy()
    {
        var server = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now));
        var client = new TlsSettings(X509Credentials.LoadAuthorities(pki.Foreign.CaCert, Now));
        var ex = await Assert.ThrowsAsync<AuthenticationException>(async () => await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", client, Token)));
        Assert.Contains("does not verify against the CA", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongHostOrSubject_IsRefused_TheRightSubjectPasses()
    {
        var server = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now));
        var ca = X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now);
        var wrongHost = await Assert.ThrowsAsync<AuthenticationException>(async () =>
            await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "10.9.9.9", new TlsSettings(ca), Token)));
        Assert.Contains("is not for 10.9.9.9", wrongHost.Message, StringComparison.Ordinal);
        var wrongSubject = await Assert.ThrowsAsync<AuthenticationException>(async () =>
            await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", new TlsSettings(ca, peerSubject: "CN=netwire-b"), Token)));
        Assert.Contains("is not 'CN=netwire-b'", wrongSubject.Message, StringComparison.Ordinal);

        // With a subject the host is not checked: spice-gtk's cert-subject.
        var (accepted, connected) = await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "10.9.9.9", new TlsSettings(ca, peerSubject: "CN=netwire-a"), Token));
        Assert.Equal(TlsAcceptOutcome.Secured, accepted.Outcome);
        await connected.DisposeAsync();
        await accepted.Stream!.DisposeAsync();
    }

    [Fact]
    public async Task Plaintext_OnATlsEndpoint_IsSeenFromItsFirstBytes_WhichStayUnread()
    {
        var server = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now));
        var (_, serverSocket, client) = await ConnectedAsync();
        using (serverSocket)
        using (client)
        {
            await client.SendAsync("NWST\u0001\u0000"u8.ToArray(), Token);
            await using var inner = new NetworkStream(serverSocket, ownsSocket: false);
            var accepted = await TlsHandshake.AcceptAsync(serverSocket, inner, server, Token);
            Assert.Equal(TlsAcceptOutcome.NotTls, accepted.Outcome);
            Assert.Contains("'NWST..'", accepted.Detail, StringComparison.Ordinal);
            Assert.Equal(6, serverSocket.Available);
        }
    }

    [Fact]
    public async Task MutualTls_RefusesNoCertificate_AndAForeignOne_AcceptsItsOwn()
    {
        var server = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Server, Now), requirePeerCertificate: true);

        var none = new TlsSettings(X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now));
        var (refusedNone, _) = await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", none, Token), clientMayFail: true);
        Assert.Equal(TlsAcceptOutcome.PeerRefused, refusedNone.Outcome);
        Assert.Contains("sent no certificate", refusedNone.Detail, StringComparison.Ordinal);

        // The foreign client trusts our CA for the server, but its own certificate is the foreign CA's.
        var foreignCredentials = X509Credentials.Load(pki.ForeignDir, TlsRole.Client, Now);
        foreignCredentials.Authorities.Clear();
        foreignCredentials.Authorities.AddRange(X509Credentials.LoadAuthorities(pki.Pki.CaCert, Now).Authorities);
        var (refusedForeign, _) = await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", new TlsSettings(foreignCredentials), Token), clientMayFail: true);
        Assert.Equal(TlsAcceptOutcome.PeerRefused, refusedForeign.Outcome);
        Assert.Contains("does not verify against the CA", refusedForeign.Detail, StringComparison.Ordinal);

        var own = new TlsSettings(X509Credentials.Load(pki.Good, TlsRole.Client, Now));
        var (accepted, connected) = await HandshakeAsync(server, s => TlsHandshake.ConnectAsync(s, "127.0.0.1", own, Token));
        Assert.Equal(TlsAcceptOutcome.Secured, accepted.Outcome);
        Assert.Equal("CN=netwire-a-client", accepted.Stream!.RemoteCertificate!.Subject);
        await connected.DisposeAsync();
        await accepted.Stream.DisposeAsync();
    }

    private static async Task<(TcpListener Listener, Socket Server, Socket Client)> ConnectedAsync()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync((IPEndPoint)listener.LocalEndpoint, Token);
        var server = await listener.AcceptSocketAsync(Token);
        listener.Stop();
        return (listener, server, client);
    }

    /// <summary>Runs both sides; the accepting side's result and the connecting side's stream.</summary>
    private static async Task<(TlsAccepted Accepted, Stream Connected)> HandshakeAsync(TlsSettings server, Func<Stream, Task<System.Net.Security.SslStream>> connect, bool clientMayFail = false)
    {
        var (_, serverSocket, clientSocket) = await ConnectedAsync();
        var serverStream = new NetworkStream(serverSocket, ownsSocket: true);
        var accepting = TlsHandshake.AcceptAsync(serverSocket, serverStream, server, Token);
        Stream? connected = null;
        Exception? failure = null;
        try
        {
            connected = await connect(new NetworkStream(clientSocket, ownsSocket: true));
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            failure = ex;
            clientSocket.Dispose();
        }

        var accepted = await accepting;
        if (accepted.Outcome != TlsAcceptOutcome.Secured)
        {
            await serverStream.DisposeAsync();
        }

        if (failure is not null && !clientMayFail)
        {
            throw failure;
        }

        return (accepted, connected ?? Stream.Null);
    }
}
