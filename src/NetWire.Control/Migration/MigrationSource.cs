using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Control.Qmp;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Core.Tls;
using NetWire.Spice;

namespace NetWire.Control.Migration;

/// <summary>QEMU's MigrationStatus values that NetWire goes through.</summary>
internal enum MigrationStatus
{
    None,
    Setup,
    Active,
    Completed,
    Failed,
    Cancelled,
}

/// <summary>
/// The source side of <c>migrate</c>: waits for the SPICE connect phase, streams the appliance
/// state to the target, then ends the client migration (MIGRATE_END on success, MIGRATE_CANCEL
/// on failure or cancel). The source keeps running whatever happens.
/// </summary>
/// <remarks>
/// Status: none → setup (waiting for the clients' answers to MIGRATE_BEGIN) → active (state
/// streaming) → completed / failed / cancelled; each change raises the MIGRATION event. One
/// migration at a time; a finished one can be followed by another.
/// </remarks>
internal sealed class MigrationSource : IAsyncDisposable
{
    private readonly SpiceServer? _spice;
    private readonly StateRegistry _state;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly MigrationTls? _tls;
    private readonly Lock _gate = new();

    private MigrationStatus _status;
    private string? _error;
    private long _transferred;
    private long _total;
    private long _startedAt;
    private long _startedTicks;
    private long _endedAt;
    private CancellationTokenSource? _cancel;
    private Task _run = Task.CompletedTask;
    private JsonObject? _flows;
    private MigrationPhases? _phases;

    /// <param name="tls">Mutual TLS (<c>--migration-x509-dir</c>), or null for plaintext.</param>
    public MigrationSource(SpiceServer? spice, StateRegistry state, ILogger logger, TimeProvider time, MigrationTls? tls = null)
    {
        _spice = spice;
        _state = state;
        _logger = logger;
        _time = time;
        _tls = tls;
    }

    /// <summary>Raises a QMP event (name, data); set before use, must not block.</summary>
    public Action<string, JsonObject?>? Events { get; set; }

    /// <summary>Called when a migration completed (the appliance hands its wire over); must not block.</summary>
    public Action? Completed { get; set; }

    /// <summary>Called when a migration is in sight (<c>client_migrate_info</c>, <c>migrate</c>): start what a freeze would wait for; must not block.</summary>
    public Action? Warm { get; set; }

    /// <summary>Time to open the state connection.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time from the first state byte to the target's reply.</summary>
    public TimeSpan TransferTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Stream version written (the current one unless a test asks otherwise).</summary>
    public ushort StreamVersion { get; set; } = StateStream.CurrentVersion;

    /// <summary>Oldest compatible version written.</summary>
    public ushort StreamOldestCompatible { get; set; } = StateStream.OldestCompatibleVersion;

    public MigrationStatus Status
    {
        get
        {
            lock (_gate)
            {
                return _status;
            }
        }
    }

    /// <summary>The run of the current or last migration (tests wait on it).</summary>
    public Task Completion
    {
        get
        {
            lock (_gate)
            {
                return _run;
            }
        }
    }

    /// <summary>Starts <c>migrate</c> to <paramref name="uri"/>.</summary>
    /// <exception cref="QmpException">A migration is running, or the URI is not tcp:HOST:PORT.</exception>
    public void Start(string uri)
    {
        (string Host, int Port) target;
        try
        {
            target = MigrationWire.ParseUri(uri);
        }
        catch (FormatException ex)
        {
            throw QmpException.Generic(ex.Message);
        }

        lock (_gate)
        {
            if (_status is MigrationStatus.Setup or MigrationStatus.Active)
            {
                throw QmpException.Generic("There's a migration process in progress");
            }

            _cancel?.Dispose();
            _cancel = new CancellationTokenSource();
            _error = null;
            _flows = null;
            _phases = null;
            _transferred = 0;
            _total = 0;
            _startedAt = _time.GetTimestamp();
            _startedTicks = Stopwatch.GetTimestamp();
            _endedAt = 0;
            _status = MigrationStatus.Setup;
            var token = _cancel.Token;
            _run = Task.Run(() => RunAsync(target.Host, target.Port, token), CancellationToken.None);
        }

        Warm?.Invoke();
        MigrationControlLog.Started(_logger, uri);
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "setup" });
    }

    /// <summary>
    /// <c>migrate_cancel</c>: a running migration ends as cancelled; without one, a pending
    /// <c>client_migrate_info</c> is withdrawn (MIGRATE_CANCEL to clients that connected).
    /// </summary>
    public async Task CancelAsync()
    {
        CancellationTokenSource? cancel = null;
        lock (_gate)
        {
            if (_status is MigrationStatus.Setup or MigrationStatus.Active)
            {
                cancel = _cancel;
            }
        }

        if (cancel is not null)
        {
            await cancel.CancelAsync().ConfigureAwait(false);
            await Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return;
        }

        if (_spice?.Migration.Destination is not null)
        {
            await _spice.Migration.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Cancels a running migration and waits for it to end.</summary>
    public async ValueTask DisposeAsync()
    {
        CancellationTokenSource? cancel;
        lock (_gate)
        {
            cancel = _cancel;
        }

        if (cancel is not null)
        {
            await cancel.CancelAsync().ConfigureAwait(false);
            await Completion.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancel.Dispose();
        }
    }

    /// <summary><c>query-migrate</c>'s reply.</summary>
    public JsonObject Query()
    {
        lock (_gate)
        {
            if (_status == MigrationStatus.None)
            {
                return [];
            }

            var end = _endedAt != 0 ? _endedAt : _time.GetTimestamp();
            var reply = new JsonObject
            {
                ["status"] = Name(_status),
                ["total-time"] = (long)_time.GetElapsedTime(_startedAt, end).TotalMilliseconds,
                ["state"] = new JsonObject
                {
                    ["transferred"] = _transferred,
                    ["total"] = _total,
                    ["remaining"] = Math.Max(0, _total - _transferred),
                },
            };
            if (_error is not null)
            {
                reply["error-desc"] = _error;
            }

            if (_phases is not null)
            {
                reply["phases"] = _phases.Json.DeepClone();
            }

            if (_flows is not null)
            {
                reply["flows"] = _flows.DeepClone();
            }

            return reply;
        }
    }

    public static string Name(MigrationStatus status) => status.ToString().ToLowerInvariant();

    /// <summary>Migrations by outcome and their duration (start to end), on the <c>NetWire</c> meter.</summary>
    private static class Meters
    {
        private static readonly System.Diagnostics.Metrics.Meter s_meter = new(NetWire.Core.Metrics.WireMetrics.MeterName);

        public static readonly System.Diagnostics.Metrics.Counter<long> Migrations =
            s_meter.CreateCounter<long>("netwire.migrations", "{migration}", "Outgoing migrations, by outcome (completed, failed, cancelled)");

        public static readonly System.Diagnostics.Metrics.Histogram<double> Duration =
            s_meter.CreateHistogram<double>("netwire.migration.duration", "s", "Time from migrate to the end of an outgoing migration");
    }

    private void SetStatus(MigrationStatus status, string? error = null)
    {
        var ended = false;
        long startedAt, endedAt;
        lock (_gate)
        {
            _status = status;
            _error = error;
            if (status is MigrationStatus.Completed or MigrationStatus.Failed or MigrationStatus.Cancelled)
            {
                _endedAt = _time.GetTimestamp();
                ended = true;
            }

            startedAt = _startedAt;
            endedAt = _endedAt;
        }

        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = Name(status) });

        // After the event, which a management tool waits for: the first use makes the instruments.
        if (ended)
        {
            var outcome = new KeyValuePair<string, object?>("outcome", Name(status));
            Meters.Migrations.Add(1, outcome);
            Meters.Duration.Record(_time.GetElapsedTime(startedAt, endedAt).TotalSeconds, outcome);
        }
    }

    private async Task RunAsync(string host, int port, CancellationToken cancellationToken)
    {
        MigrationStatus outcome;
        string? error = null;
        var handovers = _state.Handovers;
        var frozen = new List<IHandoverSection>();
        var handover = new Handover();
        var phases = new MigrationPhases();
        Task<TargetConnection>? opening = null;
        (long Bytes, string Reply, long Milliseconds)? transferred = null;
        TargetConnection? connection = null;
        try
        {
            if (_spice?.Migration.ConnectTask is { } connecting)
            {
                // Clients told to link to the target must have answered (or timed out) first.
                await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
            }

            SetStatus(MigrationStatus.Active);
            var watch = Stopwatch.StartNew();
            phases.Restart(Volatile.Read(ref _startedTicks));
            phases.Mark("start");

            // The connection opens while the sections freeze and the stream is built (connect, TLS,
            // the stream's header), so the target is reading by the time the stream is written.
            opening = OpenAsync(host, port, StateStream.Header(StreamVersion, StreamOldestCompatible), cancellationToken);
            foreach (var section in handovers)
            {
                frozen.Add(section);
                await section.FreezeAsync(cancellationToken).ConfigureAwait(false);
            }

            phases.Mark("freeze");
            var stream = _state.Build(StreamVersion, StreamOldestCompatible);
            lock (_gate)
            {
                _total = stream.Length;
            }

            phases.Mark("state");
            connection = await opening.ConfigureAwait(false);
            handover.Sent = true;
            phases.Mark("connect");
            var reply = await TransferAsync(connection.Network, _tls is null ? connection.Socket : null, host, port, stream, frozen, handover, phases, cancellationToken).ConfigureAwait(false);
            if (reply.Accepted)
            {
                outcome = MigrationStatus.Completed;
                transferred = (stream.Length, reply.Text, watch.ElapsedMilliseconds);
            }
            else
            {
                outcome = MigrationStatus.Failed;
                error = handover.Released
                    ? $"the target failed after the source handed its flows over: {reply.Text}"
                    : $"the target refused the appliance state: {reply.Text}";
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !handover.Released)
        {
            outcome = MigrationStatus.Cancelled;
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is InvalidDataException or TimeoutException or ArgumentException or OperationCanceledException or StateFormatException or AuthenticationException)
        {
            outcome = MigrationStatus.Failed;
            error = ex is SocketException se && !handover.Sent ? $"cannot reach the target {host}:{port}: {se.Message}" : ex.Message;
            if (handover.Released)
            {
                error = $"the target failed after the source handed its flows over: {error}";
            }
        }

        if (!handover.Released)
        {
            // Nothing left this appliance: everything that was held still runs again.
            foreach (var section in frozen)
            {
                await section.ThawAsync().ConfigureAwait(false);
            }
        }
        else if (!handover.Completed)
        {
            foreach (var section in frozen)
            {
                section.Complete();
            }
        }

        var flows = Flows(frozen);
        phases.Mark("end");
        lock (_gate)
        {
            _flows = flows;
            _phases = phases;
        }

        // The outcome first (what a management tool waits for before it resumes the VM), then the
        // wire handed over; the logs, the connection's close and the clients' end after that.
        SetStatus(outcome, error);
        if (outcome == MigrationStatus.Completed)
        {
            Completed?.Invoke();
        }

        if (connection is not null)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
        else if (opening is not null)
        {
            // The freeze or the stream failed while the connection was opening.
            _ = CloseWhenOpenAsync(opening);
        }

        if (transferred is { } done)
        {
            MigrationControlLog.Transferred(_logger, done.Bytes, done.Reply, done.Milliseconds);
        }

        if (error is not null)
        {
            MigrationControlLog.Failed(_logger, error);
        }

        MigrationControlLog.PhaseTimes(_logger, phases.ToString());

        if (_spice is not null)
        {
            await _spice.Migration.EndAsync(outcome == MigrationStatus.Completed).ConfigureAwait(false);
        }
    }

    private static JsonObject? Flows(List<IHandoverSection> sections)
    {
        JsonObject? flows = null;
        foreach (var section in sections)
        {
            if (section.LastResult is { } result)
            {
                flows ??= [];
                foreach (var (name, value) in result)
                {
                    flows[name] = (flows[name]?.GetValue<long>() ?? 0) + value;
                }
            }
        }

        return flows;
    }

    /// <summary>
    /// Opens the state connection to the target (with <c>--migration-x509-dir</c> the TLS handshake
    /// included) and sends the stream's <paramref name="header"/>, within <see cref="ConnectTimeout"/>.
    /// </summary>
    private async Task<TargetConnection> OpenAsync(string host, int port, byte[] header, CancellationToken cancellationToken)
    {
        if (_tls is { Connect: null })
        {
            throw new AuthenticationException($"--migration-x509-dir {_tls.Directory} has no {X509Credentials.ClientCertFile}: this appliance cannot be a migration source over TLS");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream? network = null;
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectTimeout.CancelAfter(ConnectTimeout);
        try
        {
            await socket.ConnectAsync(host, port, connectTimeout.Token).ConfigureAwait(false);
            network = new NetworkStream(socket, ownsSocket: false);
            if (_tls?.Connect is { } tls)
            {
                network = await TlsHandshake.ConnectAsync(network, host, tls, connectTimeout.Token).ConfigureAwait(false);
            }

            try
            {
                await network.WriteAsync(header, connectTimeout.Token).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The target may have refused and closed: its reply says why.
            }

            return new TargetConnection(socket, network);
        }
        catch (Exception ex)
        {
            if (network is not null)
            {
                await network.DisposeAsync().ConfigureAwait(false);
            }

            socket.Dispose();
            if (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"no {(_tls is null ? "connection" : "TLS connection")} to the target {host}:{port} within {ConnectTimeout.TotalSeconds:0.#} s");
            }

            throw;
        }
    }

    private static async Task CloseWhenOpenAsync(Task<TargetConnection> opening)
    {
        try
        {
            await (await opening.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is OperationCanceledException or TimeoutException or AuthenticationException)
        {
            // It never opened: nothing to close.
        }
    }

    /// <summary>
    /// Sends the stream after its header and follows the target's replies (docs/migration.md, "Handover"): a text
    /// reply ends it; a prepared reply makes the handover sections let go (<see cref="Handover.Released"/>
    /// from then on, there is no way back), then the target's final reply and the unlock.
    /// </summary>
    /// <param name="plain">The connection's socket when it is plaintext (<see cref="MigrationWire.WaitReadable"/>), else null.</param>
    private async Task<(bool Accepted, string Text)> TransferAsync(Stream network, Socket? plain, string host, int port, byte[] stream, List<IHandoverSection> handovers, Handover handover, MigrationPhases phases, CancellationToken cancellationToken)
    {
        using var transferTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        transferTimeout.CancelAfter(TransferTimeout);
        MigrationReply reply;
        try
        {
            const int Chunk = 64 * 1024;
            try
            {
                Interlocked.Add(ref _transferred, StateStream.HeaderLength);
                for (var at = StateStream.HeaderLength; at < stream.Length; at += Chunk)
                {
                    var n = Math.Min(Chunk, stream.Length - at);
                    await network.WriteAsync(stream.AsMemory(at, n), transferTimeout.Token).ConfigureAwait(false);
                    Interlocked.Add(ref _transferred, n);
                }
            }
            catch (IOException)
            {
                // The target may have refused the header and closed: its reply says why.
            }

            MigrationWire.WaitReadable(plain);
            reply = await MigrationWire.ReadAnyReplyAsync(network, transferTimeout.Token).ConfigureAwait(false);
            phases.Mark("transfer");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"the target {host}:{port} did not take the state within {TransferTimeout.TotalSeconds:0.#} s");
        }

        if (reply.Kind == MigrationWire.Refused)
        {
            return (false, reply.Text);
        }

        // From here on the flows are the target's: a migrate_cancel no longer applies.
        handover.Released = true;
        foreach (var section in handovers)
        {
            section.Release(reply.Refusals is { } refusals ? refusals.GetValueOrDefault(section.Name) : null);
        }

        phases.Mark("release");

        if (reply.Kind == MigrationWire.Accepted)
        {
            // A target that took no handover section (an older NetWire): what they held was reset.
            CompleteAll(handovers, handover);
            return (true, reply.Text);
        }

        using var finish = new CancellationTokenSource(TransferTimeout);
        try
        {
            await network.WriteAsync(new[] { MigrationWire.Commit }, finish.Token).ConfigureAwait(false);
            MigrationWire.WaitReadable(plain);
            var final = await MigrationWire.ReadReplyAsync(network, finish.Token).ConfigureAwait(false);
            phases.Mark("restore");
            CompleteAll(handovers, handover);
            phases.Mark("unlock");
            try
            {
                await network.WriteAsync(new[] { MigrationWire.Unlocked }, finish.Token).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // The target starts its flows after a short wait without it.
            }

            return final;
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the target {host}:{port} did not confirm within {TransferTimeout.TotalSeconds:0.#} s");
        }
    }

    private static void CompleteAll(List<IHandoverSection> handovers, Handover handover)
    {
        foreach (var section in handovers)
        {
            section.Complete();
        }

        handover.Completed = true;
    }

    /// <summary>The state connection to the target: the socket and the stream over it (TLS or not).</summary>
    private sealed class TargetConnection(Socket socket, Stream network) : IAsyncDisposable
    {
        public Socket Socket => socket;

        public Stream Network { get; } = network;

        public async ValueTask DisposeAsync()
        {
            await Network.DisposeAsync().ConfigureAwait(false);
            socket.Dispose();
        }
    }

    /// <summary>How far a migration's handover went.</summary>
    private sealed class Handover
    {
        /// <summary>The state connection was open (an error after it is not "cannot reach").</summary>
        public bool Sent { get; set; }

        /// <summary>The handover sections let go: a failure now cannot give them back.</summary>
        public bool Released { get; set; }

        /// <summary>The handover sections were completed (network lock lifted).</summary>
        public bool Completed { get; set; }
    }
}

/// <summary>Control-side migration log events, ids 7100-7119.</summary>
internal static partial class MigrationControlLog
{
    [LoggerMessage(7100, LogLevel.Information, "Migration to {Uri} started")]
    public static partial void Started(ILogger logger, string uri);

    [LoggerMessage(7101, LogLevel.Information, "Migration: {Bytes} bytes of state adopted by the target ({Reply}) in {Milliseconds} ms")]
    public static partial void Transferred(ILogger logger, long bytes, string reply, long milliseconds);

    [LoggerMessage(7102, LogLevel.Warning, "Migration failed: {Error}")]
    public static partial void Failed(ILogger logger, string error);

    [LoggerMessage(7103, LogLevel.Information, "Migration steps (ms): {Phases}")]
    public static partial void PhaseTimes(ILogger logger, string phases);

    [LoggerMessage(7117, LogLevel.Information, "Incoming migration from {Remote}: steps (ms): {Phases}")]
    public static partial void IncomingPhaseTimes(ILogger logger, System.Net.EndPoint? remote, string phases);

    [LoggerMessage(7110, LogLevel.Information, "Waiting for incoming migration on {EndPoint}")]
    public static partial void IncomingListening(ILogger logger, System.Net.EndPoint endPoint);

    [LoggerMessage(7111, LogLevel.Warning, "Incoming migration from {Remote} refused: {Reason}")]
    public static partial void IncomingRefused(ILogger logger, System.Net.EndPoint? remote, string reason);

    [LoggerMessage(7113, LogLevel.Debug, "Incoming migration connection from {Remote} dropped: {Reason}")]
    public static partial void IncomingDropped(ILogger logger, System.Net.EndPoint? remote, string reason);

    [LoggerMessage(7114, LogLevel.Error, "Incoming migration accept failed")]
    public static partial void IncomingAcceptFailed(ILogger logger, Exception exception);

    [LoggerMessage(7115, LogLevel.Debug, "Incoming migration from {Remote}: {Tls}, client certificate verified")]
    public static partial void IncomingSecured(ILogger logger, System.Net.EndPoint? remote, string tls);

    [LoggerMessage(7116, LogLevel.Warning, "Incoming migration from {Remote}: no unlock from the source ({Reason}); the migrated flows start anyway")]
    public static partial void NoUnlock(ILogger logger, System.Net.EndPoint? remote, string reason);

    [LoggerMessage(7112, LogLevel.Information, "Incoming migration from {Remote}: {Bytes} bytes, version {Version}, adopted sections [{Adopted}], unknown sections [{Unknown}]")]
    public static partial void IncomingAdopted(ILogger logger, System.Net.EndPoint? remote, long bytes, int version, string adopted, string unknown);
}
