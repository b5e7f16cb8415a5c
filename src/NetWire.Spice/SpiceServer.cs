using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.Tls;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;

namespace NetWire.Spice;

/// <summary>
/// NetWire's SPICE server: a plaintext TCP listener, a TLS listener, or both; the link stage
/// for every connection, and the sessions it creates.
/// </summary>
/// <remarks>
/// How this works. Each accepted connection is one channel (protocol.md §1.1); on the TLS port
/// it is TLS from its first byte: a peer whose first bytes are not a TLS handshake is closed
/// unanswered and counted, and a failed handshake likewise. Up to
/// <see cref="SpiceServerOptions.MaxPendingLinks"/> may be in the link stage at once (both
/// ports together); one more
/// evicts the oldest that has not yet sent a whole link message (<see cref="PendingConnections"/>),
/// so a flood of silent connections cannot lock real clients out: they link in a few round
/// trips while the flood's connections age towards eviction. The whole link stage, from accept
/// through the TLS handshake to the link result, must finish within
/// <see cref="SpiceServerOptions.LinkTimeout"/> (a silent or dribbling client is dropped). The
/// channel security policy (<see cref="SpiceServerOptions.ChannelSecurity"/>) is checked once
/// the link message is read: a channel on the wrong port gets NEED_SECURED or NEED_UNSECURED.
/// The tunnel channel links here too. Routing after authentication:
/// <code>
///   main, connection_id 0           new session, random id          -> OK, then MAIN_INIT
///   main, connection_id announced,  migration target                -> OK, parked until the
///     or any while migrations are                                          client's MIGRATE_END
///     accepted (serve --incoming)
///   main, any other id              BAD_CONNECTION_ID (spice-server would adopt it)
///   other, of a parked session      OK, then parked until the session starts
///   other, id of no live session    BAD_CONNECTION_ID
///   other, channel not served       CHANNEL_NOT_AVAILABLE
/// </code>
/// A failure in one connection ends that connection only.
/// </remarks>
internal sealed class SpiceServer : IAsyncDisposable
{
    private readonly SpiceServerOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly RsaKeyPool _keys = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private readonly PendingConnections _pending;

    /// <summary>Channels past their link result OK, by connection number, until their connection ends.</summary>
    private readonly ConcurrentDictionary<long, SpiceChannelInfo> _linked = new();

    private Socket? _listener;
    private Socket? _tlsListener;
    private Task _acceptLoop = Task.CompletedTask;
    private Task _tlsAcceptLoop = Task.CompletedTask;

    /// <summary>When the last "links full" warning was logged (a timestamp of the options' clock); Interlocked.</summary>
    private long _fullWarnedAt = long.MinValue;

    /// <summary>Connections accepted so far; also the connection number in logs. Interlocked.</summary>
    private long _accepted;

    public SpiceServer(SpiceServerOptions options, TicketAuthority tickets, ILoggerFactory loggers)
    {
        _options = options;
        Tickets = tickets;
        _loggers = loggers;
        _logger = loggers.CreateLogger<SpiceServer>();
        _pending = new PendingConnections(options.MaxPendingLinks, options.LinkTimeout, options.Time);
        Migration = new Migration.SpiceMigration(this, loggers.CreateLogger<Migration.SpiceMigration>());
        StateSection = new Migration.SpiceStateSection(this);
    }

    /// <summary>The server's options (limits and timers).</summary>
    public SpiceServerOptions Options => _options;

    /// <summary>Password, expiry and ticketing switch.</summary>
    public TicketAuthority Tickets { get; }

    /// <summary>Live sessions, for routing and the migration core.</summary>
    public SessionRegistry Sessions { get; } = new();

    /// <summary>
    /// True on a migration target (<c>netwire serve --incoming</c>): a main link with any
    /// non-zero connection id is a client migrating in (bounded by
    /// <see cref="SpiceServerOptions.MaxSessions"/>, and by
    /// <see cref="SpiceServerOptions.MigrationTargetTimeout"/> from <see cref="IncomingAdopted"/>).
    /// </summary>
    public bool AcceptMigrationTargets { get; set; }

    /// <summary>
    /// Run when a client migrating in sends MIGRATE_END, before its INIT: waits until the
    /// appliance state is adopted and returns null, or returns why the client is refused. Null
    /// when nothing needs adopting.
    /// </summary>
    public Func<SpiceSession, CancellationToken, Task<string?>>? AdoptIncoming { get; set; }

    /// <summary>
    /// Completes when the appliance state is adopted; a client migrating in has
    /// <see cref="SpiceServerOptions.MigrationTargetTimeout"/> from then (or from its link, when
    /// later) to send MIGRATE_END. Null: from its link.
    /// </summary>
    public Task? IncomingAdopted { get; set; }

    /// <summary>The source side of client migration (MIGRATE_BEGIN ... MIGRATE_END).</summary>
    public Migration.SpiceMigration Migration { get; }

    /// <summary>The server's part of the appliance state (tickets, moving sessions).</summary>
    public Migration.SpiceStateSection StateSection { get; }

    /// <summary>The plaintext port's bound address (the real port when 0 was asked for).</summary>
    /// <exception cref="InvalidOperationException">Not started, or no plaintext port.</exception>
    public IPEndPoint LocalEndPoint => PlainEndPoint ?? throw new InvalidOperationException("no plaintext SPICE port");

    /// <summary>The plaintext port's bound address, or null without one.</summary>
    public IPEndPoint? PlainEndPoint => (IPEndPoint?)_listener?.LocalEndPoint;

    /// <summary>The TLS port's bound address, or null without one.</summary>
    public IPEndPoint? TlsEndPoint => (IPEndPoint?)_tlsListener?.LocalEndPoint;

    /// <summary>The linked channels now (main, tunnel, parked ones), with their transport.</summary>
    public IReadOnlyCollection<SpiceChannelInfo> LinkedChannels => _linked.Values.OrderBy(c => c.Connection).ToArray();

    /// <summary>Link-stage outcomes, for tests and status.</summary>
    public SpiceLinkCounters Counters { get; } = new();

    /// <summary>Connections in the link stage now.</summary>
    public int PendingLinks => _pending.Count;

    /// <summary>
    /// Channel lifecycle hook for the control socket (QMP SPICE_CONNECTED, _INITIALIZED,
    /// _DISCONNECTED). Set before <see cref="Start"/>; called on connection tasks, so it must
    /// neither block nor throw.
    /// </summary>
    public Action<SpiceChannelEvent>? ChannelEvents { get; set; }

    /// <summary>Binds the plaintext port, then the TLS port (each when configured), and starts accepting.</summary>
    /// <exception cref="SocketException">The plaintext address is busy or cannot be bound.</exception>
    /// <exception cref="IOException">The TLS address is busy or cannot be bound (the message names it).</exception>
    /// <exception cref="InvalidOperationException">A TLS port without TLS settings, or no port at all.</exception>
    public void Start()
    {
        if (_options.EndPoint is null && _options.TlsEndPoint is null)
        {
            throw new InvalidOperationException("the SPICE server needs a plaintext port, a TLS port, or both");
        }

        if (_options.TlsEndPoint is not null && _options.Tls is null)
        {
            throw new InvalidOperationException("a TLS port needs TLS settings (--x509-dir)");
        }

        if (_options.EndPoint is { } plain)
        {
            _listener = Listen(plain);
        }

        if (_options.TlsEndPoint is { } secure)
        {
            try
            {
                _tlsListener = Listen(secure);
            }
            catch (SocketException ex)
            {
                _listener?.Dispose();
                _listener = null;
                throw new IOException($"cannot listen on TLS port {secure}: {ex.Message}", ex);
            }
        }

        if (_listener is not null)
        {
            SpiceLog.Listening(_logger, _listener.LocalEndPoint!);
            _acceptLoop = AcceptLoopAsync(_listener, secure: false, _stop.Token);
        }

        if (_tlsListener is not null)
        {
            SpiceLog.ListeningTls(_logger, _tlsListener.LocalEndPoint!, _options.Tls!.Credentials.CertificateFile ?? "?");
            _tlsAcceptLoop = AcceptLoopAsync(_tlsListener, secure: true, _stop.Token);
        }
    }

    private static Socket Listen(IPEndPoint endPoint)
    {
        var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(endPoint);
            // A backlog deep enough that a burst of connects waits for the accept loop rather
            // than being refused by the kernel before eviction can make room.
            listener.Listen(1024);
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Stops accepting, sends DISCONNECTING to every session, and waits for all connections to end.
    /// </summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _listener?.Dispose();
        _tlsListener?.Dispose();
        var goodbyes = Sessions.Snapshot().Select(s => s.DisconnectAsync(SpiceLinkErr.Ok, TimeSpan.FromSeconds(1))).ToArray();
        await Task.WhenAll(goodbyes).ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _acceptLoop.ConfigureAwait(false);
        await _tlsAcceptLoop.ConfigureAwait(false);

        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _keys.Dispose();
        _stop.Dispose();
    }

    /// <summary>The client went away during the link: it closed mid-message, its connection failed, or the stream was closed under the read.</summary>
    private static bool IsExpectedIoFailure(Exception ex) =>
        ex is EndOfStreamException or ObjectDisposedException || IoErrors.IsSocketFailure(ex);

    private async Task AcceptLoopAsync(Socket listener, bool secure, CancellationToken cancellationToken)
    {
        while (await NetWire.Core.Net.ListenerAccept.NextAsync(listener, ex => SpiceLog.AcceptFailed(_logger, ex), cancellationToken).ConfigureAwait(false) is { } socket)
        {

            var number = Interlocked.Increment(ref _accepted);
            socket.NoDelay = true;
            var task = HandleConnectionAsync(number, socket, secure, cancellationToken);
            _connections[number] = task;
            _ = ForgetWhenDoneAsync(number, task);
        }
    }

    private async Task ForgetWhenDoneAsync(long number, Task task)
    {
        await task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _connections.TryRemove(number, out _);
    }

    private async Task HandleConnectionAsync(long number, Socket socket, bool secure, CancellationToken cancellationToken)
    {
        await Task.Yield();
        Stream stream = new NetworkStream(socket, ownsSocket: true);
        var handedOff = false;
        SpiceChannelEvent? connected = null;
        try
        {
            SpiceLog.LinkAccepted(_logger, number, socket.RemoteEndPoint);
            connected = Raise(SpiceChannelEventKind.Connected, number, socket, null, secure);

            Func<Task>? run = null;
            var evictedBefore = _pending.Evicted;
            using (var pending = _pending.Admit(cancellationToken))
            {
                if (_pending.Evicted != evictedBefore)
                {
                    WarnLinksFull();
                }

                try
                {
                    if (secure)
                    {
                        if (await SecureAsync(number, socket, stream, pending.Token).ConfigureAwait(false) is not { } ssl)
                        {
                            return;
                        }

                        stream = ssl;
                    }

                    run = await LinkAsync(number, stream, socket, secure, pending, pending.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (pending.WasEvicted && (ex is OperationCanceledException || IsExpectedIoFailure(ex)))
                {
                    Counters.Count(LinkOutcome.Evicted);
                    SpiceLog.LinkEvicted(_logger, number, _options.MaxPendingLinks);
                    return;
                }
                catch (Exception ex) when (pending.TimedOut && (ex is OperationCanceledException || IsExpectedIoFailure(ex)))
                {
                    // A read cancelled by the timer can surface as a socket error rather than a
                    // cancellation; either way the timer is why the link ended.
                    Counters.Count(LinkOutcome.TimedOut);
                    SpiceLog.LinkDropped(_logger, number, $"no complete {(secure ? "TLS handshake and " : string.Empty)}link within {_options.LinkTimeout.TotalSeconds:0.#} s");
                    return;
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                catch (Exception ex) when (IsExpectedIoFailure(ex))
                {
                    Counters.Count(LinkOutcome.ClientLeft);
                    SpiceLog.LinkDropped(_logger, number, "client closed the connection during the link");
                    return;
                }
            }

            if (run is not null)
            {
                handedOff = true;
                try
                {
                    await run().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // The server is stopping: a channel that ends by its cancellation ended cleanly.
                }
            }
        }
        finally
        {
            _linked.TryRemove(number, out _);
            if (!handedOff)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }

            if (connected is not null)
            {
                ChannelEvents?.Invoke(connected with { Kind = SpiceChannelEventKind.Disconnected });
            }
        }
    }

    /// <summary>Warns that the link stage is full, at most every 10 s: each eviction itself is logged at Debug.</summary>
    private void WarnLinksFull()
    {
        var now = _options.Time.GetTimestamp();
        var last = Interlocked.Read(ref _fullWarnedAt);
        if ((last == long.MinValue || _options.Time.GetElapsedTime(last, now) >= TimeSpan.FromSeconds(10))
            && Interlocked.CompareExchange(ref _fullWarnedAt, now, last) == last)
        {
            SpiceLog.LinksFull(_logger, _options.MaxPendingLinks, _pending.Evicted);
        }
    }

    /// <summary>The TLS handshake of a connection on the TLS port; null when it failed (counted, logged, nothing sent).</summary>
    private async Task<Stream?> SecureAsync(long number, Socket socket, Stream stream, CancellationToken cancellationToken)
    {
        var accepted = await TlsHandshake.AcceptAsync(socket, stream, _options.Tls!, cancellationToken).ConfigureAwait(false);
        switch (accepted.Outcome)
        {
            case TlsAcceptOutcome.Secured:
                SpiceLog.TlsSecured(_logger, number, accepted.Detail);
                return accepted.Stream;
            case TlsAcceptOutcome.NotTls:
                Counters.Count(LinkOutcome.TlsPlaintext);
                SpiceLog.TlsRefused(_logger, number, accepted.Detail);
                return null;
            case TlsAcceptOutcome.PeerClosed:
                Counters.Count(LinkOutcome.ClientLeft);
                SpiceLog.LinkDropped(_logger, number, $"client closed the connection during the TLS handshake ({accepted.Detail})");
                return null;
            default:
                Counters.Count(LinkOutcome.TlsFailed);
                SpiceLog.TlsRefused(_logger, number, $"TLS handshake failed: {accepted.Detail}");
                return null;
        }
    }

    /// <summary>Raises a lifecycle event; a channel initialized is listed in <see cref="LinkedChannels"/> first.</summary>
    private SpiceChannelEvent? Raise(SpiceChannelEventKind kind, long number, Socket socket, SpiceLinkMess? mess, bool secure)
    {
        if (kind == SpiceChannelEventKind.Initialized && mess is not null)
        {
            _linked[number] = new SpiceChannelInfo(number, mess.ConnectionId, mess.ChannelType, mess.ChannelId, secure, socket.RemoteEndPoint);
        }

        if (ChannelEvents is not { } observer)
        {
            return null;
        }

        var e = new SpiceChannelEvent(kind, number, socket.LocalEndPoint, socket.RemoteEndPoint, mess?.ConnectionId ?? 0, mess?.ChannelType ?? 0, mess?.ChannelId ?? 0, secure);
        observer(e);
        return e;
    }

    /// <summary>Link stage and routing; returns what runs the linked channel, or null when refused.</summary>
    private async Task<Func<Task>?> LinkAsync(long number, Stream stream, Socket socket, bool secure, PendingConnection pending, CancellationToken cancellationToken)
    {
        var attempt = await LinkHandshake.RunAsync(stream, Tickets, _keys, ChannelCapsFor, m => _options.ChannelSecurity.Check(m.ChannelType, secure), pending, cancellationToken).ConfigureAwait(false);
        if (attempt.Mess is not { } mess)
        {
            if (attempt.Outcome is { } outcome)
            {
                Counters.Count(outcome);
            }

            Refused(number, attempt.Error, attempt.Reason);
            return null;
        }

        if (mess.ChannelType == (byte)SpiceChannelType.Main)
        {
            SpiceSession? session = null;
            if (mess.ConnectionId == 0)
            {
                if (Sessions.Count >= _options.MaxSessions)
                {
                    await RefuseAsync(number, stream, SpiceLinkErr.Error, $"{_options.MaxSessions} sessions already", cancellationToken).ConfigureAwait(false);
                    return null;
                }

                session = Sessions.Add(id => CreateSession(id, mess, stream));
            }
            else if (Sessions.TryClaimIncoming(mess.ConnectionId) || (AcceptMigrationTargets && Sessions.Count < _options.MaxSessions))
            {
                session = CreateSession(mess.ConnectionId, mess, stream, migrationTarget: true);
                if (!Sessions.TryAdd(session))
                {
                    session = null;
                }
            }

            if (session is null)
            {
                await RefuseAsync(number, stream, SpiceLinkErr.BadConnectionId, $"main link with connection id {mess.ConnectionId} and no migration expecting it", cancellationToken).ConfigureAwait(false);
                return null;
            }

            try
            {
                await LinkHandshake.WriteResultAsync(stream, SpiceLinkErr.Ok, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                Sessions.Remove(session);
                throw;
            }

            Counters.Count(LinkOutcome.Linked);
            Raise(SpiceChannelEventKind.Initialized, number, socket, mess with { ConnectionId = session.SessionId }, secure);
            return async () =>
            {
                try
                {
                    await session.RunAsync(_stop.Token).ConfigureAwait(false);
                }
                finally
                {
                    Sessions.Remove(session);
                    session.Dispose();
                }
            };
        }

        if (!Sessions.TryGet(mess.ConnectionId, out var owner))
        {
            await RefuseAsync(number, stream, SpiceLinkErr.BadConnectionId, $"channel {mess.ChannelType}:{mess.ChannelId} with connection id {mess.ConnectionId}, no such session", cancellationToken).ConfigureAwait(false);
            return null;
        }

        var service = FindService(mess.ChannelType, mess.ChannelId);
        if (service is null)
        {
            await RefuseAsync(number, stream, SpiceLinkErr.ChannelNotAvailable, $"channel {mess.ChannelType}:{mess.ChannelId} is not served", cancellationToken).ConfigureAwait(false);
            return null;
        }

        await LinkHandshake.WriteResultAsync(stream, SpiceLinkErr.Ok, cancellationToken).ConfigureAwait(false);
        Counters.Count(LinkOutcome.Linked);
        Raise(SpiceChannelEventKind.Initialized, number, socket, mess, secure);
        if (!owner!.Started.IsCompleted)
        {
            SpiceLog.ChannelParked(_logger, number, mess.ChannelType, mess.ChannelId, owner.SessionId);
        }

        return async () =>
        {
            // A channel of a client migrating in stays parked (authenticated, silent) until the
            // client's MIGRATE_END; then it starts as a fresh link (protocol.md §5.1 step 7).
            var started = false;
            try
            {
                started = await owner.Started.WaitAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Server stopping.
            }

            if (!started)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
                return;
            }

            await service.RunAsync(stream, mess, owner, _stop.Token).ConfigureAwait(false);
        };
    }

    private SpiceSession CreateSession(uint id, SpiceLinkMess mess, Stream stream, bool migrationTarget = false) =>
        new(id, mess, stream, _options, ListChannels, _loggers.CreateLogger<SpiceSession>(), migrationTarget, migrationTarget ? AdoptIncoming : null,
            migrationTarget ? IncomingAdopted : null);

    private async Task RefuseAsync(long number, Stream stream, SpiceLinkErr error, string reason, CancellationToken cancellationToken)
    {
        await LinkHandshake.WriteResultAsync(stream, error, cancellationToken).ConfigureAwait(false);
        Refused(number, error, reason);
    }

    private void Refused(long number, SpiceLinkErr error, string reason)
    {
        Counters.Count(error);
        SpiceLog.LinkRefused(_logger, number, error, reason);
    }

    private uint[] ChannelCapsFor(SpiceLinkMess mess)
    {
        if (mess.ChannelType == (byte)SpiceChannelType.Main)
        {
            return [_options.MainChannelCaps];
        }

        return FindService(mess.ChannelType, mess.ChannelId)?.ChannelCaps ?? [];
    }

    private ISpiceChannelService? FindService(byte type, byte id)
    {
        foreach (var service in _options.Channels)
        {
            if ((byte)service.Type == type && service.Id == id)
            {
                return service;
            }
        }

        return null;
    }

    private List<(byte Type, byte Id)> ListChannels()
    {
        var list = new List<(byte, byte)>(_options.Channels.Count);
        foreach (var service in _options.Channels)
        {
            list.Add(((byte)service.Type, service.Id));
        }

        return list;
    }
}
