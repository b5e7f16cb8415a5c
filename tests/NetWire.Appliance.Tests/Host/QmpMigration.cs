using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace NetWire.Appliance.Tests.Host;

/// <summary>The migration tests' QMP client: <c>migrate</c> on a source appliance, waited for to its end.</summary>
internal static class QmpMigration
{
    /// <summary>QMP <c>migrate</c> on the source, then its <c>query-migrate</c> once a MIGRATION event says it ended.</summary>
    public static async Task<JsonObject> MigrateAsync(string qmp, int port, TimeSpan wait)
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(qmp), cancellationToken);
        using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(wait);
        await reader.ReadLineAsync(timeout.Token);
        await stream.WriteAsync(Encoding.UTF8.GetBytes($"{{\"execute\":\"qmp_capabilities\"}}\n{{\"execute\":\"migrate\",\"arguments\":{{\"uri\":\"tcp:127.0.0.1:{port}\"}}}}\n"), timeout.Token);
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            var message = JsonNode.Parse(line)!.AsObject();
            if ((string?)message["event"] == "MIGRATION" && (string?)message["data"]!["status"] is "completed" or "failed" or "cancelled")
            {
                break;
            }
        }

        await stream.WriteAsync("{\"execute\":\"query-migrate\",\"id\":\"q\"}\n"u8.ToArray(), timeout.Token);
        while (await reader.ReadLineAsync(timeout.Token) is { } line)
        {
            var message = JsonNode.Parse(line)!.AsObject();
            if ((string?)message["id"] == "q")
            {
                return message["return"]!.AsObject();
            }
        }

        throw new EndOfStreamException("the control socket closed");
    }
}
