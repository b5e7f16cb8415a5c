using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using NetWire.Spice.Migration;

namespace NetWire.Spice.Channels.Main;

/// <summary>
/// One client's session: its main channel, from the link result to the close.
/// </summary>
/// <remarks>
/// How this works. After link result OK the server queues INIT (session id, agent not
/// connected, server mouse mode, multimedia time = now - 400 ms), then NAME and UUID when the
/// client has NAME_AND_UUID. Three loops run: receive (one message at a time, at most
/// <see cref="MainClientMessage.MaxBodySize"/> bytes), send (the bounded queue), and ping (a
/// PING every <see cref="SpiceServerOptions.PingInterval"/>; the PONG gives the round trip).
/// Any loop ending ends the session through <see cref="Abort"/>: the first reason wins.
///
/// Client messages: ATTACH_CHANNELS is answered with CHANNELS_LIST (the served non-main
/// channels). ACK_SYNC/ACK are accepted (main runs without an ACK window, like spice-server).
/// AGENT_* are absorbed: no agent is connected, and a token violation ends nothing.
/// DISCONNECTING ends the session quietly.
///
/// Migration, source side (protocol.md §5.1): <see cref="BeginMigration"/> sends MIGRATE_BEGIN to a
/// client with SEMI_SEAMLESS and marks it WAITING; its MIGRATE_CONNECTED or
/// MIGRATE_CONNECT_ERROR is reported through <see cref="MigrationAnswered"/>. A MIGRATE_CONNECTED
/// that comes after the wait was abandoned is answered with MIGRATE_CANCEL.
/// Migration, target side: a session created with <c>migrationTarget</c> sends nothing after the
/// link (no INIT, no pings); its other channels wait on <see cref="Started"/>. The client's
/// MIGRATE_END (109) runs the adoption gate (the appliance state must have arrived), then INIT
/// with the adopted id goes out and <see cref="Started"/> completes. A target that gets no
/// MIGRATE_END within <see cref="SpiceServerOptions.MigrationTargetTimeout"/> of the state's
/// adoption (or of the link, when later) is dropped. An unknown type or a truncated message is a
/// protocol violation and ends this session only.
/// </remarks>
internal sealed partial class SpiceSession : IDisposable
{
    private readonly Stream _stream;
    private readonly MessageConnection _connection;
    private readonly SpiceServerOptions _options;
    private readonly Func<IReadOnlyList<(byte Type, byte Id)>> _channels;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ChannelLifetime _lifetime;
    private readonly TaskCompletionSource _sendDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<bool> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Func<SpiceSession, CancellationToken, Task<string?>>? _adopt;

    /// <summary>On a migration target: completes when the appliance state is adopted, which starts the MIGRATE_END deadline; null starts it at the link.</summary>
    private readonly Task? _adopted;

    /// <summary>A <see cref="MigrationClientState"/>; Interlocked.</summary>
    private int _migration;

    /// <summary>Guards <see cref="_pingId"/> and <see cref="_pingSentAt"/> (ping loop writes, receive loop reads).</summary>
    private readonly Lock _pingGate = new();

    /// <summary>Id of the last PING sent; 0 before the first.</summary>
    private uint _pingId;

    /// <summary>TimeProvider timestamp of the last PING sent.</summary>
    private long _pingSentAt;

    /// <summary>PONGs that matched a PING. Interlocked.</summary>
    private long _pongs;

    /// <summary>Round trip of the last matched PONG, in µs. Interlocked.</summary>
    private long _lastRoundTripMicros = -1;

    public SpiceSession(
        uint sessionId,
        SpiceLinkMess link,
        Stream stream,
        SpiceServerOptions options,
        Func<IReadOnlyList<(byte Type, byte Id)>> channels,
        ILogger logger,
        bool migrationTarget = false,
        Func<SpiceSession, CancellationToken, Task<string?>>? adopt = null,
        Task? adopted = null)
    {
        IsMigrationTarget = migrationTarget;
        _adopt = adopt;
        _adopted = adopted;
        SessionId = sessionId;
        Link = link;
        _stream = stream;
        _options = options;
        _channels = channels;
        _time = options.Time;
        _logger = logger;
        MiniHeader = link.HasCommonCap(SpiceCaps.MiniHeader);
        _connection = new MessageConnection(stream, MiniHeader, MainClientMessage.MaxBodySize, options.SendQueueCapacity);
        _lifetime = new ChannelLifetime(OnAborting);
    }

    /// <summary>The session id: MAIN_INIT.session_id and the connection_id of every other channel.</summary>
    public uint SessionId { get; }

    /// <summary>The client's link message (its caps).</summary>
    public SpiceLinkMess Link { get; }

    /// <summary>True when the client offered MINI_HEADER.</summary>
    public bool MiniHeader { get; }

    /// <summary>PONGs received that answered our PING.</summary>
    public long Pongs => Interlocked.Read(ref _pongs);

    /// <summary>The last measured PING round trip, or null before the first PONG.</summary>
    public TimeSpan? LastRoundTrip => Interlocked.Read(ref _lastRoundTripMicros) is var us and >= 0 ? TimeSpan.FromMicroseconds(us) : null;

    /// <summary>
    /// Completes with true once the session's channels may run (at once for a normal session,
    /// after the client's MIGRATE_END on a migration target), false when the session ended first.
    /// </summary>
    public Task<bool> Started => _started.Task;

    /// <summary>Why the session ended, once it has.</summary>
    public Exception? AbortReason => _lifetime.Error;

    /// <summary>Why the session ended, by kind, once it has.</summary>
    public EndReason? EndedBy => _lifetime.Reason;

    /// <summary>Runs the session until the client leaves, a violation, <see cref="Abort"/> or cancellation.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var registration = _lifetime.AbortWhenCancelled("server stopping", cancellationToken);
        SpiceLog.MainUp(_logger, SessionId, Word(Link.CommonCaps), Word(Link.ChannelCaps), MiniHeader ? "mini" : "full");
        Task parked = Task.CompletedTask;
        if (IsMigrationTarget)
        {
            SpiceLog.MigrationTargetParked(_logger, SessionId);
            parked = _lifetime.GuardAsync(TargetTimerAsync);
        }
        else
        {
            QueueOpening();
            _started.TrySetResult(true);
        }

        var send = _lifetime.GuardAsync(SendAsync, EndReason.Disconnected, "send loop ended");
        var receive = _lifetime.GuardAsync(ReceiveLoopAsync, EndReason.PeerClosed, "client closed the main channel");
        var ping = _lifetime.GuardAsync(PingLoopAsync);
        await Task.WhenAll(send, receive, ping, parked).ConfigureAwait(false);
        _started.TrySetResult(false);
        SpiceLog.MainClosed(_logger, SessionId, _lifetime.Reason ?? EndReason.Failed, _lifetime.Error?.Message ?? "ended");
        await _stream.DisposeAsync().ConfigureAwait(false);
        _ended.TrySetResult();
    }

    public void Dispose() => _lifetime.Dispose();

    /// <summary>Ends the session; the first reason wins and everything else observes it.</summary>
    public void Abort(Exception reason) => _lifetime.Abort(reason);

    /// <summary>Ends the session with an explicit <paramref name="reason"/>; the first reason wins.</summary>
    public void Abort(EndReason reason, Exception error) => _lifetime.Abort(reason, error);

    /// <summary>Completes when the session has ended.</summary>
    public Task Ended => _ended.Task;

    /// <summary>Queues a NOTIFY (a message the client may show its user).</summary>
    public bool Notify(NotifySeverity severity, NotifyVisibility visibility, string message) =>
        _connection.TrySend(CommonMessages.Notify, CommonMessages.BuildNotify(NowMicros(), severity, visibility, message));

    /// <summary>
    /// Sends DISCONNECTING with <paramref name="reason"/>, lets the queue drain (up to
    /// <paramref name="grace"/>), then ends the session.
    /// </summary>
    public async Task DisconnectAsync(SpiceLinkErr reason, TimeSpan grace)
    {
        // A session that already ended (its client left while the server was stopping) has
        // nothing to send and may already be disposed.
        if (_lifetime.IsAborted)
        {
            return;
        }

        if (_connection.TrySend(CommonMessages.Disconnecting, CommonMessages.BuildDisconnecting(NowMicros(), reason)))
        {
            _connection.CompleteSending();
            try
            {
                using var timeout = new CancellationTokenSource(grace, _time);
                using var aborted = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _lifetime.Token);
                await _sendDone.Task.WaitAsync(aborted.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            catch (ObjectDisposedException)
            {
                // The session ended and was disposed while DISCONNECTING drained: nothing left to end.
                return;
            }
        }

        Abort(EndReason.Disconnected, new SpiceProtocolException($"server disconnecting ({reason})"));
    }

    private async Task SendAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _connection.SendLoopAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sendDone.TrySetResult();
        }
    }

    private static uint Word(uint[] words) => words.Length > 0 ? words[0] : 0;

    private ulong NowMicros() => (ulong)_time.GetElapsedTime(0).Ticks / 10;

    private void QueueOpening()
    {
        // protocol.md §4.3: multi_media_time = now_ms - 400 (spice-server's MM_TIME_DELAY).
        var mmTime = (uint)(_time.GetElapsedTime(0).Ticks / TimeSpan.TicksPerMillisecond) - 400;
        var init = new MainInit(
            SessionId,
            DisplayChannelsHint: 0,
            SupportedMouseModes: MainMessages.MouseModeServer,
            CurrentMouseMode: MainMessages.MouseModeServer,
            AgentConnected: false,
            AgentTokens: MainMessages.AgentWindow,
            MultiMediaTime: mmTime,
            RamHint: 0);
        _connection.TrySend(MainMessages.Init, MainMessages.BuildInit(init));
        if (Link.HasChannelCap(SpiceCaps.MainNameAndUuid))
        {
            _connection.TrySend(MainMessages.Name, MainMessages.BuildName(_options.Name));
            _connection.TrySend(MainMessages.Uuid, MainMessages.BuildUuid(_options.Uuid));
        }
    }

    /// <summary>The first abort: no more sending (what is queued is dropped with the reason), and the log.</summary>
    private void OnAborting(EndReason reason, Exception error)
    {
        _connection.CompleteSending(error);
        SpiceLog.SessionAborted(_logger, SessionId, reason, error.Message);
    }

    private async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await _connection.ReadAsync(cancellationToken).ConfigureAwait(false);
            var verdict = MainClientMessage.TryParse(header.Type, _connection.Body, out var message);
            switch (verdict)
            {
                case ClientMessageVerdict.Unknown:
                    ThrowHelper.Protocol($"unknown main channel message type {header.Type}");
                    break;
                case ClientMessageVerdict.Truncated:
                    ThrowHelper.Protocol($"main channel message {header.Type} of {header.Size} bytes is shorter than its fixed part");
                    break;
                case ClientMessageVerdict.TooLong:
                    ThrowHelper.Protocol($"main channel message {header.Type} of {header.Size} bytes is over its limit");
                    break;
            }

            if (!await HandleAsync(message, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>Acts on one message; false when the client said it is leaving.</summary>
    private async ValueTask<bool> HandleAsync(MainClientMessage message, CancellationToken cancellationToken)
    {
        if (IsMigrationTarget && !_started.Task.IsCompleted)
        {
            switch (message.Type)
            {
                case MainMessages.ClientMigrateEnd:
                    return await OnTargetMigrateEndAsync(cancellationToken).ConfigureAwait(false);
                case CommonMessages.ClientDisconnecting:
                    break;
                default:
                    // Nothing runs before INIT (protocol.md §5.1: held, as spice-server discards it).
                    SpiceLog.Ignored(_logger, SessionId, message.Type, "migration target waiting for the client's MIGRATE_END");
                    return true;
            }
        }

        switch (message.Type)
        {
            case CommonMessages.Pong:
                OnPong(message.Value);
                break;
            case CommonMessages.AckSync:
            case CommonMessages.Ack:
                // No ACK window on main (protocol.md §3.3); accepted and ignored.
                break;
            case CommonMessages.ClientDisconnecting:
                SpiceLog.ClientDisconnecting(_logger, SessionId, message.Value);
                Abort(EndReason.PeerLeft, new EndOfStreamException($"client disconnecting (reason {message.Value})"));
                return false;
            case CommonMessages.MigrateFlushMark:
            case CommonMessages.ClientMigrateData:
                // Only accepted while the server waits for them, which it never does yet.
                ThrowHelper.Protocol($"message {message.Type} outside a migration");
                break;
            case MainMessages.AttachChannels:
                var channels = _channels();
                SpiceLog.ChannelsListed(_logger, SessionId, channels.Count);
                await _connection.SendAsync(MainMessages.ChannelsList, MainMessages.BuildChannelsList(channels.ToArray()), cancellationToken).ConfigureAwait(false);
                break;
            case MainMessages.MigrateConnected:
            case MainMessages.MigrateConnectError:
                OnMigrationAnswer(message);
                break;
            case MainMessages.MouseModeRequest:
                // Only server mode exists without an inputs channel: answer with the current mode.
                await _connection.SendAsync(MainMessages.MouseMode, MainMessages.BuildMouseMode(MainMessages.MouseModeServer, MainMessages.MouseModeServer), cancellationToken).ConfigureAwait(false);
                break;
            default:
                // CLIENT_INFO, AGENT_START/DATA/TOKEN (no agent), MIGRATE_END outside a migration in,
                // DST_DO_SEAMLESS, CONNECTED_SEAMLESS (no migration in progress), QUALITY_INDICATOR.
                SpiceLog.Ignored(_logger, SessionId, message.Type, "no agent and no migration in progress");
                break;
        }

        return true;
    }

    private void OnPong(uint id)
    {
        long sentAt;
        lock (_pingGate)
        {
            if (_pingId == 0 || id != _pingId)
            {
                return;
            }

            sentAt = _pingSentAt;
        }

        var micros = _time.GetElapsedTime(sentAt).Ticks / 10;
        Interlocked.Exchange(ref _lastRoundTripMicros, micros);
        Interlocked.Increment(ref _pongs);
        SpiceLog.Pong(_logger, SessionId, id, micros);
    }

    private async Task PingLoopAsync(CancellationToken cancellationToken)
    {
        if (_options.PingInterval <= TimeSpan.Zero)
        {
            return;
        }

        if (!await _started.Task.WaitAsync(cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        uint id = 0;
        while (true)
        {
            await Task.Delay(_options.PingInterval, _time, cancellationToken).ConfigureAwait(false);
            id = id == uint.MaxValue ? 1 : id + 1;
            lock (_pingGate)
            {
                _pingId = id;
                _pingSentAt = _time.GetTimestamp();
            }

            await _connection.SendAsync(CommonMessages.Ping, CommonMessages.BuildPing(id, NowMicros()), cancellationToken).ConfigureAwait(false);
        }
    }
}
