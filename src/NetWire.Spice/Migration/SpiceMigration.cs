using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;

namespace NetWire.Spice.Migration;

/// <summary>How the connect phase of a migration ended: clients by answer.</summary>
/// <param name="Connected">Answered MIGRATE_CONNECTED: they get MIGRATE_END or MIGRATE_CANCEL.</param>
/// <param name="Failed">Answered MIGRATE_CONNECT_ERROR.</param>
/// <param name="TimedOut">Did not answer within the connect timeout.</param>
/// <param name="WithoutCap">Had no SEMI_SEAMLESS cap and were not asked.</param>
/// <param name="Superseded">A newer connect phase or the end of the migration ended this one.</param>
internal sealed record MigrateConnectResult(int Connected, int Failed, int TimedOut, int WithoutCap, bool Superseded);

/// <summary>What the end of a migration did to the clients.</summary>
internal sealed record MigrateEndResult(bool Completed, int MigrateEnd, int MigrateCancel, int SwitchHost, int Closed);

/// <summary>
/// The source side of semi-seamless client migration (protocol.md §5.1, steps 1, 4 and 5), as
/// spice-server's <c>spice_server_migrate_connect</c> / <c>_migrate_end</c>.
/// </summary>
/// <remarks>
/// How this works. <see cref="Connect"/> sends MIGRATE_BEGIN to every running client with
/// SEMI_SEAMLESS and completes when each answered (MIGRATE_CONNECTED or
/// MIGRATE_CONNECT_ERROR) or after <see cref="ConnectTimeout"/>, when the silent ones become
/// NOT_CONNECTED. <see cref="EndAsync"/> tells each client the outcome: MIGRATE_END (or
/// MIGRATE_CANCEL when the migration failed) to the connected ones, SWITCH_HOST to the others
/// when it completed; then it waits up to <see cref="LeaveTimeout"/> for those clients to go
/// and closes the rest. One migration at a time; a new <see cref="Connect"/> supersedes the
/// previous connect phase.
/// </remarks>
internal sealed class SpiceMigration
{
    private readonly SpiceServer _server;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();

    private MigrationDestination? _destination;
    private ConnectPhase? _phase;

    public SpiceMigration(SpiceServer server, ILogger logger)
    {
        _server = server;
        _logger = logger;
    }

    /// <summary>spice-server's MIGRATE_TIMEOUT: 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long clients told to leave get before the source closes them.</summary>
    public TimeSpan LeaveTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Called when a connect phase ends (for the QMP event); must not block.</summary>
    public Action<MigrateConnectResult>? ConnectCompleted { get; set; }

    /// <summary>Called after a completed migration's end: SPICE_MIGRATE_COMPLETED; must not block.</summary>
    public Action<MigrateEndResult>? EndCompleted { get; set; }

    /// <summary>The destination of <c>client_migrate_info</c>, or null.</summary>
    public MigrationDestination? Destination
    {
        get
        {
            lock (_gate)
            {
                return _destination;
            }
        }
    }

    /// <summary>The current or last connect phase's outcome, or null when none was started.</summary>
    public Task<MigrateConnectResult>? ConnectTask
    {
        get
        {
            lock (_gate)
            {
                return _phase?.Completion.Task;
            }
        }
    }

    /// <summary>
    /// <c>spice_server_migrate_client_state</c>: 1 NONE (no client), 2 WAITING (MIGRATE_BEGIN
    /// sent, no answer yet), 3 READY (any other case).
    /// </summary>
    public int ClientState
    {
        get
        {
            var sessions = _server.Sessions.Snapshot();
            if (sessions.Count == 0)
            {
                return 1;
            }

            return sessions.Any(s => s.MigrationState == MigrationClientState.Waiting) ? 2 : 3;
        }
    }

    /// <summary>Starts the connect phase towards <paramref name="destination"/>; the task completes when it ends.</summary>
    /// <exception cref="ArgumentException">A destination that cannot be sent.</exception>
    public Task<MigrateConnectResult> Connect(MigrationDestination destination)
    {
        MigrationMessages.Validate(destination);
        var body = MigrationMessages.BuildDstInfo(destination);
        ConnectPhase phase;
        ConnectPhase? previous;
        lock (_gate)
        {
            previous = _phase;
            _destination = destination;
            phase = new ConnectPhase();
            _phase = phase;
        }

        previous?.Finish(this, superseded: true);
        foreach (var session in _server.Sessions.Snapshot())
        {
            if (!session.HasSemiSeamless)
            {
                phase.AddWithoutCap();
                continue;
            }

            session.MigrationAnswered = s => phase.Answered(this, s);
            lock (phase)
            {
                if (session.BeginMigration(body))
                {
                    phase.Waiting.Add(session);
                }
            }
        }

        MigrationLog.ConnectStarted(_logger, destination.Host, destination.Port, destination.TlsPort, phase.Waiting.Count, phase.WithoutCap);
        phase.CheckDone(this);
        _ = phase.TimeoutAsync(this, ConnectTimeout, _server.Options.Time);
        return phase.Completion.Task;
    }

    /// <summary>
    /// Ends the migration: <paramref name="completed"/> says whether the appliance state reached
    /// the target. Waits (bounded) for the clients that were told to leave.
    /// </summary>
    public async Task<MigrateEndResult> EndAsync(bool completed)
    {
        MigrationDestination? destination;
        ConnectPhase? phase;
        lock (_gate)
        {
            destination = _destination;
            phase = _phase;
            _destination = null;
            _phase = null;
        }

        phase?.Finish(this, superseded: true);
        var switchBody = destination is null ? null : MigrationMessages.BuildDstInfo(destination);
        int ends = 0, cancels = 0, switches = 0;
        var leaving = new List<SpiceSession>();
        var sessions = _server.Sessions.Snapshot();
        foreach (var session in sessions)
        {
            session.MigrationAnswered = null;
            if (session.IsMigrationTarget && !session.Started.IsCompleted)
            {
                // Still migrating in; not ours to move.
                continue;
            }

            if (session.MigrationState == MigrationClientState.Connected)
            {
                session.SendMigrateEnd(completed);
                if (completed)
                {
                    ends++;
                    leaving.Add(session);
                }
                else
                {
                    cancels++;
                }
            }
            else if (completed && switchBody is not null)
            {
                session.SendSwitchHost(switchBody);
                switches++;
                leaving.Add(session);
            }
            else if (completed)
            {
                // No destination was given: the clients cannot follow (spice-server disconnects them).
                leaving.Add(session);
            }
            else
            {
                session.ResetMigration();
            }
        }

        var closed = 0;
        if (completed && leaving.Count > 0)
        {
            var all = Task.WhenAll(leaving.Select(s => s.Ended));
            await Task.WhenAny(all, Task.Delay(LeaveTimeout, _server.Options.Time)).ConfigureAwait(false);
            foreach (var session in leaving.Where(s => !s.Ended.IsCompleted))
            {
                closed++;
                session.Abort(EndReason.TimedOut, new SpiceProtocolException("migrated: the client did not leave the source in time"));
            }

            await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(2), _server.Options.Time)).ConfigureAwait(false);
        }

        var result = new MigrateEndResult(completed, ends, cancels, switches, closed);
        MigrationLog.Ended(_logger, completed, ends, cancels, switches, closed);
        if (completed)
        {
            EndCompleted?.Invoke(result);
        }

        return result;
    }

    /// <summary>Stops a connect phase without ending the migration (migrate_cancel before migrate): MIGRATE_CANCEL to connected clients.</summary>
    public Task<MigrateEndResult> CancelAsync() => EndAsync(completed: false);

    private sealed class ConnectPhase
    {
        private int _connected;
        private int _failed;
        private int _withoutCap;

        public TaskCompletionSource<MigrateConnectResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Clients sent MIGRATE_BEGIN; guarded by lock(this).</summary>
        public List<SpiceSession> Waiting { get; } = [];

        public int WithoutCap => Volatile.Read(ref _withoutCap);

        public void AddWithoutCap() => Interlocked.Increment(ref _withoutCap);

        public void Answered(SpiceMigration owner, SpiceSession session)
        {
            if (session.MigrationState == MigrationClientState.Connected)
            {
                Interlocked.Increment(ref _connected);
            }
            else
            {
                Interlocked.Increment(ref _failed);
            }

            CheckDone(owner);
        }

        public void CheckDone(SpiceMigration owner)
        {
            bool done;
            lock (this)
            {
                done = Waiting.TrueForAll(s => s.MigrationState != MigrationClientState.Waiting || s.Ended.IsCompleted);
            }

            if (done)
            {
                Finish(owner, superseded: false);
            }
        }

        public async Task TimeoutAsync(SpiceMigration owner, TimeSpan timeout, TimeProvider time)
        {
            await Task.WhenAny(Completion.Task, Task.Delay(timeout, time)).ConfigureAwait(false);
            Finish(owner, superseded: false);
        }

        public void Finish(SpiceMigration owner, bool superseded)
        {
            if (Completion.Task.IsCompleted)
            {
                return;
            }

            var timedOut = 0;
            lock (this)
            {
                foreach (var session in Waiting)
                {
                    if (session.AbandonMigrationWait())
                    {
                        timedOut++;
                    }
                }
            }

            var result = new MigrateConnectResult(Volatile.Read(ref _connected), Volatile.Read(ref _failed), timedOut, WithoutCap, superseded);
            if (Completion.TrySetResult(result))
            {
                MigrationLog.ConnectEnded(owner._logger, result.Connected, result.Failed, result.TimedOut, result.WithoutCap);
                owner.ConnectCompleted?.Invoke(result);
            }
        }
    }
}

/// <summary>Migration log events, ids 3050-3069.</summary>
internal static partial class MigrationLog
{
    [LoggerMessage(3050, LogLevel.Information, "Migration connect to {Host} port {Port} tls-port {TlsPort}: MIGRATE_BEGIN to {Clients} clients, {WithoutCap} without SEMI_SEAMLESS")]
    public static partial void ConnectStarted(ILogger logger, string host, int port, int tlsPort, int clients, int withoutCap);

    [LoggerMessage(3051, LogLevel.Information, "Migration connect phase ended: {Connected} connected, {Failed} connect errors, {TimedOut} timed out, {WithoutCap} without SEMI_SEAMLESS")]
    public static partial void ConnectEnded(ILogger logger, int connected, int failed, int timedOut, int withoutCap);

    [LoggerMessage(3052, LogLevel.Information, "Migration end (completed {Completed}): {Ends} MIGRATE_END, {Cancels} MIGRATE_CANCEL, {Switches} SWITCH_HOST, {Closed} closed by the source")]
    public static partial void Ended(ILogger logger, bool completed, int ends, int cancels, int switches, int closed);
}
