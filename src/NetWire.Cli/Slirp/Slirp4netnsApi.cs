using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Stack;
using NetWire.Stack.Nat;

namespace NetWire.Cli.Slirp;

/// <summary>
/// slirp4netns's API socket (<c>--api-socket</c>): one JSON request per connection, one JSON reply,
/// then the connection closes. Requests and replies are slirp4netns 1.2's (docs/podman.md, "The
/// API socket"): <c>add_hostfwd</c> answers <c>{"return":{"id":N}}</c>, <c>list_hostfwd</c>
/// answers <c>{"entries":[...]}</c> (without a <c>return</c>, as slirp4netns does),
/// <c>remove_hostfwd</c> answers <c>{"return":{}}</c>, and every failure is
/// <c>{"error":{"desc":"bad request: ..."}}</c>. Unlike slirp4netns 1.2, <c>host_addr</c> may be
/// an IPv6 address (the forward then reaches the container over IPv6).
/// </summary>
/// <remarks>
/// A request ends at the end of its JSON value or when the client shuts down its sending side,
/// whichever comes first; it may be at most <see cref="MaxRequestBytes"/> long and must arrive
/// within <see cref="RequestDeadline"/>. At most <see cref="MaxConnections"/> are served at once;
/// more are closed unanswered.
/// </remarks>
internal sealed class Slirp4netnsApi : IAsyncDisposable
{
    /// <summary>slirp4netns reads a request into a 4096-byte buffer.</summary>
    public const int MaxRequestBytes = 4096;

    public const int MaxConnections = 64;

    public static readonly TimeSpan RequestDeadline = TimeSpan.FromSeconds(5);

    /// <summary>Replies as slirp4netns writes them: compact, with '&gt;' and the like unescaped.</summary>
    private static readonly JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly GatewayEnd _gateway;
    private readonly IPAddress _guestAddress;
    private readonly string _path;
    private readonly ILogger _logger;
    private readonly Socket _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _slots = new(MaxConnections);
    private Task _accepting = Task.CompletedTask;

    /// <summary>Listens on <paramref name="path"/> (a stale socket there is replaced); throws <see cref="WireSetupException"/>.</summary>
    public Slirp4netnsApi(string path, GatewayEnd gateway, IPAddress guestAddress, ILogger logger)
    {
        _gateway = gateway;
        _guestAddress = guestAddress;
        _path = path;
        _logger = logger;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            RemoveStaleSocket(path);

            _listener.Bind(new UnixDomainSocketEndPoint(path));
            _listener.Listen(16);
        }
        catch (Exception ex) when (ex is SocketException || IoErrors.IsFileError(ex))
        {
            _listener.Dispose();
            throw new WireSetupException($"cannot listen on the API socket {path}: {ex.Message}", ex);
        }
    }

    public void Start() => _accepting = AcceptLoopAsync(_stop.Token);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        try
        {
            File.Delete(_path);
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
        }

        _stop.Dispose();
    }

    /// <summary>The reply to one request (the bytes the client sent); never throws for bad input.</summary>
    public JsonObject Handle(ReadOnlySpan<byte> request)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(request);
        }
        catch (JsonException)
        {
            return Error("cannot parse JSON");
        }

        if (root is not JsonObject message)
        {
            return Error("cannot parse JSON");
        }

        if (!message.TryGetPropertyValue("execute", out var executeNode) || executeNode is not JsonValue execute || !execute.TryGetValue<string>(out var command))
        {
            return Error("no execute found");
        }

        var arguments = message["arguments"] as JsonObject;
        return command switch
        {
            "add_hostfwd" => AddForward(arguments),
            "list_hostfwd" => ListForwards(),
            "remove_hostfwd" => RemoveForward(arguments),
            _ => Error("unknown execute"),
        };
    }

    private static JsonObject Error(string description) =>
        new() { ["error"] = new JsonObject { ["desc"] = $"bad request: {description}" } };

    /// <summary>Deletes a socket nobody listens on any more (a crashed run's); a live one, or a file that is no socket, is an error.</summary>
    private static void RemoveStaleSocket(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path);
            return;
        }
        catch (SocketException ex)
        {
            throw new WireSetupException($"{path} exists and is not a socket ({ex.Message})");
        }

        throw new WireSetupException($"{path} is in use by another process");
    }

    private static bool TryGetPort(JsonObject arguments, string name, bool allowZero, out ushort port)
    {
        port = 0;
        if (arguments[name] is not JsonValue value || value.GetValueKind() != JsonValueKind.Number || !value.TryGetValue<int>(out var number) || number is < 0 or > 65535 || (number == 0 && !allowZero))
        {
            return false;
        }

        port = (ushort)number;
        return true;
    }

    private static bool TryGetAddress(JsonObject arguments, string name, IPAddress fallback, out IPAddress address)
    {
        address = fallback;

        // Podman sends "guest_addr": "" (and may send "host_addr": "") for the default.
        if (!arguments.TryGetPropertyValue(name, out var node) || (node is JsonValue empty && empty.TryGetValue<string>(out var given) && given.Length == 0))
        {
            return true;
        }

        return node is JsonValue value && value.TryGetValue<string>(out var text) && IPAddress.TryParse(text, out address!) && text.Contains(address.AddressFamily == AddressFamily.InterNetworkV6 ? ':' : '.', StringComparison.Ordinal);
    }

    private JsonObject AddForward(JsonObject? arguments)
    {
        const string Prefix = "add_hostfwd: bad arguments.";
        if (arguments is null)
        {
            return Error("add_hostfwd: bad arguments");
        }

        var proto = arguments["proto"] is JsonValue protoValue && protoValue.TryGetValue<string>(out var p) ? p : null;
        if (proto is not ("tcp" or "udp"))
        {
            return Error(Prefix + "proto");
        }

        if (!TryGetAddress(arguments, "host_addr", IPAddress.Any, out var hostAddress))
        {
            return Error(Prefix + "host_addr");
        }

        if (!TryGetPort(arguments, "host_port", allowZero: false, out var hostPort))
        {
            return Error(Prefix + "host_port");
        }

        // NetWire's gateway forwards to the container's own address only (slirp4netns allows any address of the network).
        if (!TryGetAddress(arguments, "guest_addr", _guestAddress, out var guestAddress) || guestAddress.AddressFamily != AddressFamily.InterNetwork || !guestAddress.Equals(_guestAddress))
        {
            return Error($"{Prefix}guest_addr (NetWire forwards to the container's address {_guestAddress} only)");
        }

        if (!TryGetPort(arguments, "guest_port", allowZero: false, out var guestPort))
        {
            return Error(Prefix + "guest_port");
        }

        try
        {
            var id = _gateway.AddForward(new HostForward(proto == "tcp" ? Transport.Tcp : Transport.Udp, new IPEndPoint(hostAddress, hostPort), guestPort));
            return new JsonObject { ["return"] = new JsonObject { ["id"] = id } };
        }
        catch (WireSetupException ex)
        {
            return Error($"add_hostfwd: {ex.Message}");
        }
    }

    private JsonObject ListForwards()
    {
        var entries = new JsonArray();
        foreach (var (id, forward) in _gateway.Forwards)
        {
            var ipv6 = forward.Listen.AddressFamily == AddressFamily.InterNetworkV6;
            var guest = !ipv6 ? _guestAddress.ToString() : _gateway.GuestIpv6 is [var first, ..] ? first.ToString() : "::";
            entries.Add(new JsonObject
            {
                ["id"] = id,
                ["proto"] = forward.Transport == Transport.Tcp ? "tcp" : "udp",
                ["host_addr"] = forward.Listen.Address.ToString(),
                ["host_port"] = forward.Listen.Port,
                ["guest_addr"] = guest,
                ["guest_port"] = forward.GuestPort,
            });
        }

        return new JsonObject { ["entries"] = entries };
    }

    private JsonObject RemoveForward(JsonObject? arguments)
    {
        if (arguments?["id"] is not JsonValue value || value.GetValueKind() != JsonValueKind.Number || !value.TryGetValue<int>(out var id) || !_gateway.RemoveForward(id))
        {
            return Error("remove_hostfwd: bad arguments.id");
        }

        return new JsonObject { ["return"] = new JsonObject() };
    }

    private async Task AcceptLoopAsync(CancellationToken cancellationToken)
    {
        var serving = new List<Task>();
        while (await ListenerAccept.NextAsync(_listener, ex => Slirp4netnsLog.ApiFailed(_logger, ex.Message), cancellationToken).ConfigureAwait(false) is { } client)
        {
            serving.RemoveAll(task => task.IsCompleted);
            if (!_slots.Wait(0, CancellationToken.None))
            {
                Slirp4netnsLog.ApiBusy(_logger, MaxConnections);
                client.Dispose();
                continue;
            }

            serving.Add(ServeAsync(client, cancellationToken));
        }

        await Task.WhenAll(serving).ConfigureAwait(false);
    }

    private async Task ServeAsync(Socket client, CancellationToken cancellationToken)
    {
        try
        {
            using (client)
            using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                deadline.CancelAfter(RequestDeadline);
                JsonObject reply;
                try
                {
                    var request = await ReadRequestAsync(client, deadline.Token).ConfigureAwait(false);
                    reply = request is null ? Error($"request larger than {MaxRequestBytes} bytes") : Handle(request);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    reply = Error($"no complete request within {RequestDeadline.TotalSeconds:0} s");
                }

                var text = reply.ToJsonString(s_json);
                Slirp4netnsLog.ApiRequest(_logger, text);
                await client.SendAsync(Encoding.UTF8.GetBytes(text), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                client.Shutdown(SocketShutdown.Send);

                // What a client still sends (the rest of an oversized request) is read and
                // dropped until it shuts down or the deadline passes: closing with unread data
                // would reset the connection and lose the reply.
                var sink = new byte[MaxRequestBytes];
                while (await client.ReceiveAsync(sink, SocketFlags.None, deadline.Token).ConfigureAwait(false) > 0)
                {
                }
            }
        }
        catch (Exception ex) when (IoErrors.IsSocketEnd(ex))
        {
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>Reads until EOF or a complete JSON value; null when it grows past <see cref="MaxRequestBytes"/>.</summary>
    private static async Task<byte[]?> ReadRequestAsync(Socket client, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequestBytes + 1];
        var length = 0;
        while (true)
        {
            var n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return buffer[..length];
            }

            length += n;
            if (length > MaxRequestBytes)
            {
                return null;
            }

            if (IsCompleteOrInvalid(buffer.AsSpan(0, length)))
            {
                return buffer[..length];
            }
        }
    }

    /// <summary>True once the bytes hold a whole JSON value, or something that can never become one.</summary>
    private static bool IsCompleteOrInvalid(ReadOnlySpan<byte> bytes)
    {
        var reader = new Utf8JsonReader(bytes, isFinalBlock: false, default);
        try
        {
            while (reader.Read())
            {
                if (reader.CurrentDepth == 0 && reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
                {
                    return true;
                }
            }

            return false;
        }
        catch (JsonException)
        {
            return true;
        }
    }
}

/// <summary>Log events of <c>netwire slirp4netns</c> (band 52xx).</summary>
internal static partial class Slirp4netnsLog
{
    [LoggerMessage(5201, LogLevel.Debug, "API request answered: {Reply}")]
    public static partial void ApiRequest(ILogger logger, string reply);

    [LoggerMessage(5202, LogLevel.Warning, "API socket stopped accepting: {Reason}")]
    public static partial void ApiFailed(ILogger logger, string reason);

    [LoggerMessage(5203, LogLevel.Warning, "API socket: {Max} requests are being served; a connection was closed unanswered")]
    public static partial void ApiBusy(ILogger logger, int max);

    [LoggerMessage(5204, LogLevel.Information, "Ready: {Tap} in {Namespace}, {Description}")]
    public static partial void Ready(ILogger logger, string tap, string @namespace, string description);

    [LoggerMessage(5205, LogLevel.Information, "Stopping: {Reason}")]
    public static partial void Stopping(ILogger logger, string reason);
}
