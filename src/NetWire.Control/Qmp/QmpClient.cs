using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace NetWire.Control.Qmp;

/// <summary>
/// A small QMP client for <c>netwire ctl</c> and tests: greeting, negotiation, one command at a
/// time. Events that arrive while waiting for a reply are kept in <see cref="Events"/>.
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private long _nextId;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false);
    }

    /// <summary>The server's greeting line.</summary>
    public JsonObject Greeting { get; private set; } = [];

    /// <summary>Events received so far, oldest first.</summary>
    public List<JsonObject> Events { get; } = [];

    /// <summary>Connects and reads the greeting (does not negotiate).</summary>
    /// <exception cref="SocketException">Nothing listens there.</exception>
    public static async Task<QmpClient> ConnectAsync(ControlEndpoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.EndPoint.AddressFamily, SocketType.Stream, endpoint.IsUnix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(endpoint.EndPoint, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new QmpClient(socket);
        client.Greeting = await client.ReadObjectAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new IOException("the server closed the connection before its greeting");
        return client;
    }

    /// <summary>Sends <c>qmp_capabilities</c>; returns its reply.</summary>
    public Task<JsonObject> NegotiateAsync(CancellationToken cancellationToken) => ExecuteAsync("qmp_capabilities", null, cancellationToken);

    /// <summary>Runs a command; returns the whole reply (<c>return</c> or <c>error</c>).</summary>
    public async Task<JsonObject> ExecuteAsync(string name, JsonObject? arguments, CancellationToken cancellationToken)
    {
        var id = (++_nextId).ToString(CultureInfo.InvariantCulture);
        var request = new JsonObject { ["execute"] = name, ["id"] = id };
        if (arguments is not null)
        {
            request["arguments"] = arguments;
        }

        await SendLineAsync(request.ToJsonString(), cancellationToken).ConfigureAwait(false);
        return await ReadReplyAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends raw text plus a newline (tests send malformed input this way).</summary>
    public async Task SendLineAsync(string line, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(line + "\n");
        await _stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sends raw bytes as they are (tests send invalid UTF-8 this way).</summary>
    public ValueTask SendBytesAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken) => _stream.WriteAsync(bytes, cancellationToken);

    /// <summary>Reads lines until a reply (not an event) arrives.</summary>
    /// <exception cref="IOException">The server closed the connection.</exception>
    public async Task<JsonObject> ReadReplyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var message = await ReadObjectAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new IOException("the server closed the connection");
            if (message.ContainsKey("event"))
            {
                Events.Add(message);
                continue;
            }

            return message;
        }
    }

    /// <summary>Waits for the next event named <paramref name="name"/> (returns a kept one first).</summary>
    public async Task<JsonObject> WaitEventAsync(string name, CancellationToken cancellationToken)
    {
        while (true)
        {
            var index = Events.FindIndex(e => (string?)e["event"] == name);
            if (index >= 0)
            {
                var found = Events[index];
                Events.RemoveAt(index);
                return found;
            }

            var message = await ReadObjectAsync(cancellationToken).ConfigureAwait(false)
                ?? throw new IOException("the server closed the connection");
            if (!message.ContainsKey("event"))
            {
                throw new InvalidOperationException($"a reply arrived while waiting for event {name}: {message.ToJsonString()}");
            }

            Events.Add(message);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }

    private async Task<JsonObject?> ReadObjectAsync(CancellationToken cancellationToken)
    {
        var line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
        if (line is null)
        {
            return null;
        }

        return JsonNode.Parse(line) as JsonObject ?? throw new JsonException($"not a JSON object: {line}");
    }
}
