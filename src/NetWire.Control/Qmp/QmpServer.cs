using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace NetWire.Control.Qmp;

/// <summary>
/// A QMP-shaped control socket: the protocol QEMU users and libvirt know, on a unix or TCP socket.
/// </summary>
/// <remarks>
/// How this works. Each client gets the greeting, must send <c>qmp_capabilities</c>, then sends
/// one JSON object per line: <c>{"execute": NAME, "arguments": {...}, "id": ANY}</c>. Every
/// input line gets exactly one reply, <c>{"return": ...}</c> or
/// <c>{"error": {"class", "desc"}}</c>, with the id echoed; nothing a client sends closes its
/// socket except EOF. Commands run one at a time per client, in order. Events
/// (<see cref="Emit"/>) go to every client past negotiation, with a timestamp.
/// <code>
///   accept -> greeting -> [qmp_capabilities] -> commands + events -> EOF
///             (other commands before negotiation: CommandNotFound)
/// </code>
/// Limits (<see cref="QmpServerOptions"/>): clients at once, input line length, queued output
/// per client. Deliberately left out: out-of-band execution, multi-line JSON input (one
/// object per line, as qmp-shell and python qemu.qmp send), QMP capabilities such as oob.
/// </remarks>
internal sealed partial class QmpServer : IAsyncDisposable
{
    private readonly ControlEndpoint _endpoint;
    private readonly QmpCommandTable _commands;
    private readonly QmpServerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();

    /// <summary>Live sessions by client number. Added by the accept loop, removed when a session ends.</summary>
    private readonly ConcurrentDictionary<long, QmpSession> _sessions = new();

    private Socket? _listener;
    private Task? _acceptLoop;

    /// <summary>Clients accepted so far; also the client number in logs. Accept loop only.</summary>
    private long _accepted;

    public QmpServer(ControlEndpoint endpoint, QmpCommandTable commands, QmpServerOptions options, ILogger logger)
    {
        _endpoint = endpoint;
        _commands = commands;
        _options = options;
        _logger = logger;
    }

    /// <summary>The bound address (the real port when tcp port 0 was asked for).</summary>
    public EndPoint LocalEndPoint => _listener?.LocalEndPoint ?? throw new InvalidOperationException("not started");

    /// <summary>Clients connected now.</summary>
    public int ClientCount => _sessions.Count;

    /// <summary>Binds and starts accepting.</summary>
    /// <exception cref="SocketException">The address is busy (for a unix socket: a live server answers on the path).</exception>
    public void Start()
    {
        if (_endpoint.EndPoint is UnixDomainSocketEndPoint unix)
        {
            RemoveStaleSocket(unix);
        }

        var listener = new Socket(_endpoint.EndPoint.AddressFamily, SocketType.Stream, _endpoint.IsUnix ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            listener.Bind(_endpoint.EndPoint);
            if (_endpoint.EndPoint is UnixDomainSocketEndPoint path && OperatingSystem.IsLinux())
            {
                // Owner only, before anyone can connect: the control socket has no authentication
                // of its own, so the file mode is what guards it.
                File.SetUnixFileMode(path.ToString(), UnixFileMode.UserRead | UnixFileMode.UserWrite);
            }

            listener.Listen(16);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        ControlLog.Listening(_logger, _endpoint.Text);
        if (_endpoint.EndPoint is IPEndPoint { Address: var address } && !IPAddress.IsLoopback(address))
        {
            ControlLog.Unauthenticated(_logger, _endpoint.Text);
        }
        _acceptLoop = AcceptLoopAsync(listener, _stop.Token);
    }

    /// <summary>
    /// Sends an event to every negotiated client: <c>{"event", "data", "timestamp"}</c>. Never
    /// blocks; a client whose output queue is full is dropped.
    /// </summary>
    public void Emit(string name, JsonObject? data)
    {
        var line = FormatEvent(name, data, _options.Time.GetUtcNow());
        foreach (var session in _sessions.Values)
        {
            session.TrySendEvent(line);
        }
    }

    /// <summary>An event's line as <see cref="Emit"/> sends it (also run ahead by the code warm-up: its first call compiles the JSON writer).</summary>
    public static string FormatEvent(string name, JsonObject? data, DateTimeOffset now)
    {
        var micros = now.ToUnixTimeMilliseconds() * 1000 + (now.Ticks % TimeSpan.TicksPerMillisecond) / 10;
        var message = new JsonObject
        {
            ["event"] = name,
            ["data"] = data ?? [],
            ["timestamp"] = new JsonObject
            {
                ["seconds"] = micros / 1_000_000,
                ["microseconds"] = micros % 1_000_000,
            },
        };
        return message.ToJsonString();
    }

    /// <summary>Stops accepting, lets every client's queued output drain (bounded), and closes them.</summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _listener?.Dispose();
        await Task.WhenAll(_sessions.Values.Select(s => s.FlushAndCloseAsync(TimeSpan.FromSeconds(1)))).ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_acceptLoop is not null)
        {
            await _acceptLoop.ConfigureAwait(false);
        }

        await Task.WhenAll(_sessions.Values.Select(s => s.Completion)).ConfigureAwait(false);
        if (_listener is not null && _endpoint.EndPoint is UnixDomainSocketEndPoint unix)
        {
            File.Delete(unix.ToString());
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    /// <summary>
    /// QEMU unlinks the path before binding. NetWire only removes it when nothing answers there,
    /// so a second appliance cannot steal a live one's socket.
    /// </summary>
    private static void RemoveStaleSocket(UnixDomainSocketEndPoint unix)
    {
        var path = unix.ToString();
        if (!File.Exists(path))
        {
            return;
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(unix);
        }
        catch (SocketException)
        {
            File.Delete(path);
            return;
        }

        throw new SocketException((int)SocketError.AddressAlreadyInUse);
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken cancellationToken)
    {
        while (await NetWire.Core.Net.ListenerAccept.NextAsync(listener, ex => ControlLog.AcceptFailed(_logger, ex), cancellationToken).ConfigureAwait(false) is { } socket)
        {

            var number = ++_accepted;
            var stream = new NetworkStream(socket, ownsSocket: true);
            if (_sessions.Count >= _options.MaxClients)
            {
                ControlLog.TooManyClients(_logger, _options.MaxClients);
                _ = RefuseAsync(stream, _options.MaxClients);
                continue;
            }

            var session = new QmpSession(number, stream, _commands, _options, _logger);
            _sessions[number] = session;
            _ = RunSessionAsync(session, cancellationToken);
        }
    }

    private static async Task RefuseAsync(NetworkStream stream, int max)
    {
        await using (stream.ConfigureAwait(false))
        {
            var line = QmpSession.ErrorLine(QmpErrorClass.GenericError, $"too many control clients ({max})", null);
            try
            {
                await stream.WriteAsync(line).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The refused client went away first.
            }
        }
    }

    private async Task RunSessionAsync(QmpSession session, CancellationToken cancellationToken)
    {
        await Task.Yield();
        ControlLog.ClientConnected(_logger, session.Number);
        try
        {
            var reason = await session.RunAsync(cancellationToken).ConfigureAwait(false);
            ControlLog.ClientLeft(_logger, session.Number, reason);
        }
        finally
        {
            _sessions.TryRemove(session.Number, out _);
            await session.DisposeAsync().ConfigureAwait(false);
        }
    }
}
