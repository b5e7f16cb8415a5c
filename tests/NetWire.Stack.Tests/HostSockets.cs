using System.Net.Sockets;

namespace NetWire.Stack.Tests;

/// <summary>The host side of a gateway test's TCP connections.</summary>
internal static class HostSockets
{
    /// <summary>Reads <paramref name="connected"/>'s socket until the peer's FIN and returns every byte read.</summary>
    public static async Task<byte[]> ReadToEndAsync(Task<Socket> connected, CancellationToken cancellationToken)
    {
        var socket = await connected;
        var stream = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
            if (read == 0)
            {
                return stream.ToArray();
            }

            stream.Write(buffer, 0, read);
        }
    }
}
