using System.Net;
using System.Net.Sockets;

namespace NetWire.Stack.Tests.Host;

/// <summary>Reads a host forward from the host's side while the namespace's server comes up.</summary>
internal static class ForwardProbe
{
    /// <summary>A port on 127.0.0.1 that was free a moment ago, for a forward to listen on.</summary>
    public static int FreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>
    /// Connects to 127.0.0.1:<paramref name="port"/> and reads one line, again every 100 ms until a
    /// line comes (the forward listens before the namespace's server does, and until then each
    /// connection is reset or closed empty), for at most 20 s; null when none came.
    /// </summary>
    public static async Task<string?> ReadLineAsync(int port)
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                using var reader = new StreamReader(client.GetStream());
                if (await reader.ReadLineAsync() is { } line)
                {
                    return line;
                }
            }
            catch (SocketException)
            {
            }
            catch (IOException)
            {
            }

            await Task.Delay(100);
        }

        return null;
    }
}
