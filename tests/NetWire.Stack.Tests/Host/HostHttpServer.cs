using System.Net;
using System.Net.Sockets;

namespace NetWire.Stack.Tests.Host;

/// <summary>The host side of the download tests: one HTTP/1.0 client, one response with the payload.</summary>
internal static class HostHttpServer
{
    /// <summary>
    /// Accepts one client on <paramref name="listener"/>, reads its request to the blank line,
    /// sends <paramref name="payload"/> with a Content-Length, half-closes and reads to EOF;
    /// returns the client's address as the host saw it.
    /// </summary>
    public static async Task<IPEndPoint> ServeOnceAsync(TcpListener listener, byte[] payload)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var remote = (IPEndPoint)client.Client.RemoteEndPoint!;
        var stream = client.GetStream();
        var buffer = new byte[4096];
        var request = "";
        while (!request.Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer);
            Assert.NotEqual(0, n);
            request += System.Text.Encoding.ASCII.GetString(buffer, 0, n);
        }

        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Length: {payload.Length}\r\n\r\n"));
        await stream.WriteAsync(payload);
        client.Client.Shutdown(SocketShutdown.Send);

        // netwire run stops its gateway as soon as the command exits, so the FIN of curl's close
        // may still be on its way from the namespace's kernel: the connection then ends here
        // with a reset, after curl had every byte (which the tests' hashes check).
        try
        {
            while (await stream.ReadAsync(buffer) > 0)
            {
            }
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }

        return remote;
    }
}
