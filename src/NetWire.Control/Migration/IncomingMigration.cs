using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Spice;
using NetWire.Spice.Channels.Main;

namespace NetWire.Control.Migration;

/// <summary>
/// The target side (<c>netwire serve --incoming tcp:ADDRESS:PORT</c>): waits for one appliance
/// state stream, adopts it, and lets the clients that migrate in start.
/// </summary>
/// <remarks>
/// How this works. Connections are taken one at a time; each has <see cref="ReadTimeout"/> to
/// deliver a whole stream. A stream that is refused (wrong magic or version, malformed,
/// checksum) gets an 'E' reply saying why, nothing is applied, and the target keeps waiting
/// for another attempt. The first stream adopted completes <see cref="Adopted"/> and closes the
/// listener. Meanwhile the SPICE server accepts clients migrating in; each one's MIGRATE_END
/// waits for <see cref="Adopted"/> (bounded by the server's migration target timer) and is
/// refused when its session id is not in the adopted state.
/// </remarks>
internal sealed class IncomingMigration : IAsyncDisposable
{
    private readonly IPEndPoint _endPoint;
    private readonly StateRegistry _state;
    private readonly SpiceServer? _spice;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<StateAdoption> _adopted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private int _refused;

    public IncomingMigration(IPEndPoint endPoint, StateRegistry state, SpiceServer? spice, ILogger logger)
    {
        _endPoint = endPoint;
        _state = state;
        _spice = spice;
        _logger = logger;
    }

    /// <summary>Raises a QMP event (name, data); must not block.</summary>
    public Action<string, JsonObject?>? Events { get; set; }

    /// <summary>Time one connection has to deliver its whole stream.</summary>
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Completes when a state stream has been adopted.</summary>
    public Task<StateAdoption> Adopted => _adopted.Task;

    /// <summary>Streams refused so far.</summary>
    public int Refused => Volatile.Read(ref _refused);

    public IPEndPoint LocalEndPoint => (IPEndPoint)(_listener?.LocalEndPoint ?? throw new InvalidOperationException("not started"));

    /// <summary>Binds, and makes the SPICE server accept clients migrating in.</summary>
    /// <exception cref="SocketException">The address cannot be bound.</exception>
    public void Start()
    {
        var listener = new Socket(_endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(_endPoint);
            listener.Listen(4);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        if (_spice is not null)
        {
            _spice.AdoptIncoming = GateAsync;
            _spice.AcceptMigrationTargets = true;
        }

        MigrationControlLog.IncomingListening(_logger, listener.LocalEndPoint!);
        _acceptLoop = AcceptLoopAsync(listener, _stop.Token);
    }

    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    /// <summary>The SPICE server's adoption gate for a client's MIGRATE_END.</summary>
    private async Task<string?> GateAsync(SpiceSession session, CancellationToken cancellationToken)
    {
        await _adopted.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        return _spice is not null && !_spice.StateSection.WasAdopted(session.SessionId)
            ? $"session {session.SessionId} is not one the migrated state announced"
            : null;
    }

    private async Task AcceptLoopAsync(Socket listener, CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IoErrors.IsShutdown(ex, cancellationToken))
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            using (socket)
            {
                if (await ReceiveAsync(socket, cancellationToken).ConfigureAwait(false))
                {
                    // One migration in: the listener closes.
                    listener.Dispose();
                    return;
                }
            }
        }
    }

    /// <summary>How long the target waits for the source's unlock before it starts migrated flows anyway.</summary>
    public TimeSpan UnlockTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Reads, checks and adopts one stream; true when adopted. A stream with handover sections
    /// goes through the prepared / commit / unlock steps (MigrationWire) before its flows start.
    /// </summary>
    private async Task<bool> ReceiveAsync(Socket socket, CancellationToken cancellationToken)
    {
        var remote = socket.RemoteEndPoint;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ReadTimeout);
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "active" });
        string reason;
        try
        {
            var document = await StateStream.ReadAsync(stream, timeout.Token).ConfigureAwait(false);
            var plan = _state.Prepare(document);
            if (plan.HasHandover)
            {
                await stream.WriteAsync(MigrationWire.BuildPrepared(plan.Refusals), timeout.Token).ConfigureAwait(false);
                var answer = await ReadByteAsync(stream, timeout.Token).ConfigureAwait(false);
                if (answer != MigrationWire.Commit)
                {
                    throw new StateFormatException(answer == MigrationWire.Abort ? "the source withdrew the migration" : "the source went away before it handed its flows over");
                }
            }

            plan.Apply();
            var adoption = plan.Adoption;
            var summary = $"adopted {document.Length} bytes, sections [{string.Join(", ", adoption.Adopted)}]";
            MigrationControlLog.IncomingAdopted(_logger, remote, document.Length, document.Version, string.Join(", ", adoption.Adopted), string.Join(", ", adoption.Unknown));
            await TryReplyAsync(stream, true, summary, cancellationToken).ConfigureAwait(false);
            if (plan.HasHandover)
            {
                // The source lifts its network lock, then says so; flows start after that.
                using var unlock = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                unlock.CancelAfter(UnlockTimeout);
                try
                {
                    await ReadByteAsync(stream, unlock.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or StateFormatException || IoErrors.IsIoFailure(ex))
                {
                    MigrationControlLog.NoUnlock(_logger, remote, ex.Message);
                }

                plan.Activate();
            }

            _adopted.TrySetResult(adoption);
            Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "completed" });
            return true;
        }
        catch (StateFormatException ex)
        {
            reason = ex.Message;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            reason = $"no complete state stream within {ReadTimeout.TotalSeconds:0.#} s";
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex))
        {
            reason = $"connection failed: {ex.Message}";
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        Interlocked.Increment(ref _refused);
        MigrationControlLog.IncomingRefused(_logger, remote, reason);
        await TryReplyAsync(stream, false, reason, cancellationToken).ConfigureAwait(false);
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "failed", ["error-desc"] = reason });
        return false;
    }

    private static async Task<byte> ReadByteAsync(Stream stream, CancellationToken cancellationToken)
    {
        var one = new byte[1];
        if (await stream.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
        {
            throw new StateFormatException("the source closed the connection");
        }

        return one[0];
    }

    private static async Task TryReplyAsync(Stream stream, bool accepted, string text, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(5));
            await stream.WriteAsync(MigrationWire.BuildReply(accepted, text), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is OperationCanceledException)
        {
            // The source went away; it sees the migration as failed.
        }
    }
}
