using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace NetWire.Appliance.Tests.Host;

/// <summary>The migration tests' QMP client: one command on a fresh connection, or <c>migrate</c> waited for to its end.</summary>
internal static class QmpMigration
{
    /// <summary>One QMP command on a fresh connection; its reply.</summary>
    public static async Task<JsonObject> CommandAsync(string qmp, string command, string arguments, TimeSpan wait)
    {
        using var session = await Session.OpenAsync(qmp, wait);
        await session.SendAsync($"{{\"execute\":\"{command}\",\"arguments\":{arguments},\"id\":\"c\"}}\n");
        return await session.ReplyAsync("c");
    }

    /// <summary>QMP <c>migrate</c> on the source, then its <c>query-migrate</c> once a MIGRATION event says it ended.</summary>
    public static async Task<JsonObject> MigrateAsync(string qmp, int port, TimeSpan wait)
    {
        using var session = await Session.OpenAsync(qmp, wait);
        await session.SendAsync($"{{\"execute\":\"migrate\",\"arguments\":{{\"uri\":\"tcp:127.0.0.1:{port}\"}}}}\n");
        while (await session.ReadAsync() is { } message)
        {
            if ((string?)message["event"] == "MIGRATION" && (string?)message["data"]!["status"] is "completed" or "failed" or "cancelled")
            {
                break;
            }
        }

        await session.SendAsync("{\"execute\":\"query-migrate\",\"id\":\"q\"}\n");
        return (await session.ReplyAsync("q"))["return"]!.AsObject();
    }

    /// <summary>A QMP connection past its greeting and qmp_capabilities, with one deadline for everything.</summary>
    private sealed class Session : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly CancellationTokenSource _timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        private NetworkStream? _stream;
        private StreamReader? _reader;

        public static async Task<Session> OpenAsync(string qmp, TimeSpan wait)
        {
            var session = new Session();
            session._timeout.CancelAfter(wait);
            await session._socket.ConnectAsync(new UnixDomainSocketEndPoint(qmp), session._timeout.Token);
            session._stream = new NetworkStream(session._socket);
            session._reader = new StreamReader(session._stream, Encoding.UTF8);
            await session._reader.ReadLineAsync(session._timeout.Token);
            await session.SendAsync("{\"execute\":\"qmp_capabilities\"}\n");
            return session;
        }

        public async Task SendAsync(string text) => await _stream!.WriteAsync(Encoding.UTF8.GetBytes(text), _timeout.Token);

        /// <summary>The next message, or null when the socket closed.</summary>
        public async Task<JsonObject?> ReadAsync() =>
            await _reader!.ReadLineAsync(_timeout.Token) is { } line ? JsonNode.Parse(line)!.AsObject() : null;

        /// <summary>The reply with <paramref name="id"/>, skipping events and other replies.</summary>
        public async Task<JsonObject> ReplyAsync(string id)
        {
            while (await ReadAsync() is { } message)
            {
                if ((string?)message["id"] == id)
                {
                    return message;
                }
            }

            throw new EndOfStreamException("the control socket closed");
        }

        public void Dispose()
        {
            _reader?.Dispose();
            _stream?.Dispose();
            _socket.Dispose();
            _timeout.Dispose();
        }
    }
}
