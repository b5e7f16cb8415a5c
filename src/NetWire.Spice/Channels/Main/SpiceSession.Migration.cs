using NetWire.Core.Net;
using NetWire.Spice.Link;
using NetWire.Spice.Migration;

namespace NetWire.Spice.Channels.Main;

/// <summary>The session's migration part: MIGRATE_BEGIN and its answer as a source, the parked start as a target.</summary>
internal sealed partial class SpiceSession
{
    /// <summary>True for a client that migrates in: nothing is sent until its MIGRATE_END.</summary>
    public bool IsMigrationTarget { get; }

    /// <summary>True when the client advertised SEMI_SEAMLESS_MIGRATE.</summary>
    public bool HasSemiSeamless => Link.HasChannelCap(SpiceCaps.MainSemiSeamlessMigrate);

    /// <summary>Where this client is in a migration away from this server.</summary>
    public MigrationClientState MigrationState => (MigrationClientState)Volatile.Read(ref _migration);

    /// <summary>Called (on the receive loop; must not block) when the client answers MIGRATE_BEGIN.</summary>
    public Action<SpiceSession>? MigrationAnswered { get; set; }

    /// <summary>
    /// Sends MIGRATE_BEGIN (a DstInfo body) when the client has SEMI_SEAMLESS and the session
    /// runs; the client is then WAITING. False when it does not qualify.
    /// </summary>
    public bool BeginMigration(byte[] dstInfo)
    {
        if (!HasSemiSeamless || AbortReason is not null || !Started.IsCompletedSuccessfully || !Started.Result)
        {
            return false;
        }

        Volatile.Write(ref _migration, (int)MigrationClientState.Waiting);
        if (!_connection.TrySend(MainMessages.MigrateBegin, dstInfo))
        {
            Volatile.Write(ref _migration, (int)MigrationClientState.None);
            return false;
        }

        SpiceLog.MigrationSent(_logger, SessionId, "MIGRATE_BEGIN");
        return true;
    }

    /// <summary>The wait for this client's answer ended without one: it is NOT_CONNECTED now. False when it had answered.</summary>
    public bool AbandonMigrationWait() =>
        Interlocked.CompareExchange(ref _migration, (int)MigrationClientState.NotConnected, (int)MigrationClientState.Waiting) == (int)MigrationClientState.Waiting;

    /// <summary>Queues MIGRATE_END (true) or MIGRATE_CANCEL (false); the migration state returns to NONE.</summary>
    public bool SendMigrateEnd(bool completed)
    {
        Volatile.Write(ref _migration, (int)MigrationClientState.None);
        var sent = _connection.TrySend(completed ? MainMessages.MigrateEnd : MainMessages.MigrateCancel, []);
        if (sent)
        {
            SpiceLog.MigrationSent(_logger, SessionId, completed ? "MIGRATE_END" : "MIGRATE_CANCEL");
        }

        return sent;
    }

    /// <summary>Queues MIGRATE_SWITCH_HOST (a DstInfo body); the migration state returns to NONE.</summary>
    public bool SendSwitchHost(byte[] dstInfo)
    {
        Volatile.Write(ref _migration, (int)MigrationClientState.None);
        var sent = _connection.TrySend(MainMessages.MigrateSwitchHost, dstInfo);
        if (sent)
        {
            SpiceLog.MigrationSent(_logger, SessionId, "MIGRATE_SWITCH_HOST");
        }

        return sent;
    }

    /// <summary>Forgets a migration that never reached its end (NONE again).</summary>
    public void ResetMigration() => Volatile.Write(ref _migration, (int)MigrationClientState.None);

    private async Task TargetTimerAsync(CancellationToken cancellationToken)
    {
        // A client links here at client_migrate_info, and in a whole-VM move QEMU's own migration
        // runs before the state is sent, minutes for a large VM (docs/migration.md, "Whole-VM
        // migration"); MIGRATE_END is due only once the state is here, so the deadline starts then.
        if (_adopted is not null)
        {
            await Task.WhenAny(_started.Task, _adopted).WaitAsync(cancellationToken).ConfigureAwait(false);
            if (_started.Task.IsCompleted)
            {
                return;
            }
        }

        var timeout = _options.MigrationTargetTimeout;
        var expired = Task.Delay(timeout, _time, cancellationToken);
        if (await Task.WhenAny(_started.Task, expired).ConfigureAwait(false) == expired)
        {
            await expired.ConfigureAwait(false);
            Abort(EndReason.TimedOut, new SpiceProtocolException($"migration target: no MIGRATE_END from the client within {timeout.TotalSeconds:0.#} s"));
        }
    }

    /// <summary>The client's MIGRATE_END on a migration target: adopt, then INIT and start the parked channels.</summary>
    private async ValueTask<bool> OnTargetMigrateEndAsync(CancellationToken cancellationToken)
    {
        if (!HasSemiSeamless)
        {
            SpiceLog.Ignored(_logger, SessionId, MainMessages.ClientMigrateEnd, "the client did not advertise SEMI_SEAMLESS_MIGRATE");
            return true;
        }

        if (_adopt is not null && await _adopt(this, cancellationToken).ConfigureAwait(false) is { } refusal)
        {
            Abort(EndReason.Disconnected, new SpiceProtocolException($"migration target: {refusal}"));
            return false;
        }

        QueueOpening();
        _started.TrySetResult(true);
        SpiceLog.MigrationTargetStarted(_logger, SessionId);
        return true;
    }

    private void OnMigrationAnswer(MainClientMessage message)
    {
        var connected = message.Type == MainMessages.MigrateConnected;
        SpiceLog.MigrationAnswer(_logger, SessionId, connected ? "MIGRATE_CONNECTED" : "MIGRATE_CONNECT_ERROR");
        var next = connected ? MigrationClientState.Connected : MigrationClientState.ConnectError;
        if (Interlocked.CompareExchange(ref _migration, (int)next, (int)MigrationClientState.Waiting) == (int)MigrationClientState.Waiting)
        {
            MigrationAnswered?.Invoke(this);
            return;
        }

        // protocol.md §5.1 step 4: a late MIGRATE_CONNECTED, after the source stopped waiting.
        if (connected && MigrationState == MigrationClientState.NotConnected)
        {
            _connection.TrySend(MainMessages.MigrateCancel, []);
            SpiceLog.MigrationSent(_logger, SessionId, "MIGRATE_CANCEL (late MIGRATE_CONNECTED)");
        }
    }
}
