using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Core.Tls;
using NetWire.Spice;
using NetWire.Spice.Channels.Main;

namespace NetWire.Control.Migration;

/// <summary>
/// The target side (<c>netwire serve --incoming tcp:ADDRESS:PORT</c>): waits for one appliance
/// state stream, adopts it, and lets the clients that migrate in start.
/// </summary>
/// <remarks>
/// How this works. Every connection is accepted at once into a bounded pending set
/// (<see cref="PendingConnections"/>, <see cref="MaxPending"/>) and has <see cref="HeaderTimeout"/>
/// to send the stream's 8-byte header; when the set is full the oldest connection that has sent
/// nothing is evicted, so silent connections cannot keep the source out. A connection whose
/// header arrived waits for the one reader (streams are read one at a time, so at most one
/// stream's memory is held), then has <see cref="ReadTimeout"/> from its accept to deliver the
/// whole stream. With <c>--migration-x509-dir</c> the pending stage begins with a mutual TLS
/// handshake: a plaintext stream (its first bytes are peeked, not read) gets a plaintext 'E'
/// reply saying TLS is required, a source without a certificate this target's CA signed fails
/// the handshake; either way nothing of the stream is read, the refusal is logged and counted
/// (<see cref="TlsRefused"/>); a handshake that never finishes is silent like a missing header.
/// A stream that is refused (wrong magic or version, malformed,
/// checksum) gets an 'E' reply saying why, nothing is applied, and the target keeps waiting
/// for another attempt. The first stream adopted completes <see cref="Adopted"/> and closes the
/// listener. Meanwhile the SPICE server accepts clients migrating in; each one's MIGRATE_END
/// waits for <see cref="Adopted"/> and is refused when its session id is not in the adopted
/// state; the server's migration target timer runs from <see cref="Adopted"/>.
/// </remarks>
internal sealed class IncomingMigration : IAsyncDisposable
{
    private readonly IPEndPoint _endPoint;
    private readonly StateRegistry _state;
    private readonly SpiceServer? _spice;
    private readonly TlsSettings? _tls;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<StateAdoption> _adopted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _reader = new(1, 1);
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private PendingConnections? _pending;
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private long _accepted;
    private int _refused;
    private int _tlsRefused;
    private long _evicted;
    private long _silent;

    /// <summary>The steps of the last stream adopted, null before one. Written by the reader once it is done.</summary>
    private volatile JsonObject? _phases;

    /// <param name="tls">Mutual TLS (<c>--migration-x509-dir</c>), or null for plaintext.</param>
    public IncomingMigration(IPEndPoint endPoint, StateRegistry state, SpiceServer? spice, ILogger logger, TlsSettings? tls = null)
    {
        _endPoint = endPoint;
        _state = state;
        _spice = spice;
        _logger = logger;
        _tls = tls;
    }

    /// <summary>Raises a QMP event (name, data); must not block.</summary>
    public Action<string, JsonObject?>? Events { get; set; }

    /// <summary>Time one connection has to deliver its whole stream.</summary>
    public TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Time a connection has from its accept to the stream's header; then it is dropped as silent.</summary>
    public TimeSpan HeaderTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the target waits for the source's unlock before it starts migrated flows anyway.</summary>
    public TimeSpan UnlockTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Connections waiting for their header at once; one more evicts the oldest silent one.</summary>
    public int MaxPending { get; set; } = 64;

    /// <summary>How long each step of the last adopted stream took (<see cref="MigrationPhases"/>), a copy; null before one.</summary>
    public JsonObject? Phases => _phases?.DeepClone().AsObject();

    /// <summary>Connections accepted so far.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections evicted while waiting for their header, to make room for a newer one.</summary>
    public long Evicted => Interlocked.Read(ref _evicted);

    /// <summary>Connections dropped because no header came within <see cref="HeaderTimeout"/>, or that closed before one.</summary>
    public long Silent => Interlocked.Read(ref _silent);

    /// <summary>Connections waiting for their header now.</summary>
    public int Pending => _pending?.Count ?? 0;

    /// <summary>Connections refused at the TLS handshake: plaintext, no or a foreign certificate (also counted in <see cref="Refused"/>).</summary>
    public int TlsRefused => Volatile.Read(ref _tlsRefused);

    /// <summary>True when the stream must come over mutual TLS.</summary>
    public bool RequiresTls => _tls is not null;

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
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            throw;
        }

        _listener = listener;
        _pending = new PendingConnections(MaxPending, HeaderTimeout);
        if (_spice is not null)
        {
            _spice.AdoptIncoming = GateAsync;
            _spice.IncomingAdopted = _adopted.Task;
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
        await Task.WhenAll(_connections.Values).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
        _reader.Dispose();
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
        while (await ListenerAccept.NextAsync(listener, ex => MigrationControlLog.IncomingAcceptFailed(_logger, ex), cancellationToken).ConfigureAwait(false) is { } socket)
        {
            var number = Interlocked.Increment(ref _accepted);
            var task = HandleAsync(listener, socket, cancellationToken);
            _connections[number] = task;
            _ = ForgetWhenDoneAsync(number, task);
        }
    }

    private async Task ForgetWhenDoneAsync(long number, Task task)
    {
        await task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _connections.TryRemove(number, out _);
    }

    /// <summary>One connection: its header within the pending stage, then its turn at the reader.</summary>
    private async Task HandleAsync(Socket listener, Socket socket, CancellationToken cancellationToken)
    {
        await Task.Yield();
        using (socket)
        {
            var remote = socket.RemoteEndPoint;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(ReadTimeout);
            var header = new byte[StateStream.HeaderLength];
            Stream stream = new NetworkStream(socket, ownsSocket: false);
            try
            {
                using (var pending = _pending!.Admit(timeout.Token))
                {
                    try
                    {
                        if (_tls is not null)
                        {
                            if (await SecureAsync(socket, stream, remote, pending.Token, cancellationToken).ConfigureAwait(false) is not { } secured)
                            {
                                return;
                            }

                            stream = secured;
                        }

                        await stream.ReadExactlyAsync(header, pending.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or EndOfStreamException || IoErrors.IsIoFailure(ex))
                    {
                        if (pending.WasEvicted)
                        {
                            Interlocked.Increment(ref _evicted);
                            MigrationControlLog.IncomingDropped(_logger, remote, "evicted: the oldest silent connection, for a newer one");
                        }
                        else if (!cancellationToken.IsCancellationRequested)
                        {
                            Interlocked.Increment(ref _silent);
                            MigrationControlLog.IncomingDropped(_logger, remote, pending.TimedOut
                                ? $"no {(_tls is null ? string.Empty : "TLS handshake and ")}stream header within {HeaderTimeout.TotalSeconds:0.#} s"
                                : "closed before a stream header");
                        }

                        return;
                    }
                }

                try
                {
                    await _reader.WaitAsync(timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    if (!cancellationToken.IsCancellationRequested)
                    {
                        await RefuseAsync(stream, remote, $"no turn to be read within {ReadTimeout.TotalSeconds:0.#} s (another stream was being read)", cancellationToken).ConfigureAwait(false);
                    }

                    return;
                }

                try
                {
                    if (_adopted.Task.IsCompleted)
                    {
                        await RefuseAsync(stream, remote, "a state stream was adopted already", cancellationToken).ConfigureAwait(false);
                    }
                    else if (await ReceiveAsync(stream, _tls is null ? socket : null, remote, header, timeout, cancellationToken).ConfigureAwait(false))
                    {
                        // One migration in: the listener closes.
                        listener.Dispose();
                    }
                }
                finally
                {
                    _reader.Release();
                }
            }
            finally
            {
                // The TLS stream when there is one; the socket itself closes with the using.
                await stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The mutual TLS handshake within the pending stage; null when the source was refused
    /// (logged, counted, a plaintext source told why), and the target keeps waiting.
    /// </summary>
    /// <exception cref="OperationCanceledException">The pending stage ended: deadline, eviction or stop.</exception>
    private async Task<Stream?> SecureAsync(Socket socket, Stream stream, EndPoint? remote, CancellationToken pending, CancellationToken cancellationToken)
    {
        var accepted = await TlsHandshake.AcceptAsync(socket, stream, _tls!, pending).ConfigureAwait(false);
        if (accepted.Stream is { } secured)
        {
            MigrationControlLog.IncomingSecured(_logger, remote, accepted.Detail);
            return secured;
        }

        var reason = accepted.Outcome switch
        {
            TlsAcceptOutcome.NotTls => $"this target takes the state over mutual TLS only (--migration-x509-dir); the source sent {accepted.Detail}",
            TlsAcceptOutcome.PeerRefused => $"TLS: the source's certificate is refused: {accepted.Detail}",
            TlsAcceptOutcome.PeerClosed => $"TLS: the source closed the connection during the handshake ({accepted.Detail})",
            _ => $"TLS handshake failed: {accepted.Detail}",
        };
        Interlocked.Increment(ref _tlsRefused);
        if (accepted.Outcome == TlsAcceptOutcome.NotTls)
        {
            // A plaintext source reads a plaintext reply: its query-migrate says why.
            await RefuseAsync(stream, remote, reason, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            Interlocked.Increment(ref _refused);
            MigrationControlLog.IncomingRefused(_logger, remote, reason);
        }

        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "failed", ["error-desc"] = reason });
        return null;
    }

    /// <summary>
    /// Reads, checks and adopts one stream; true when adopted. A stream with handover sections
    /// goes through the prepared / commit / unlock steps (MigrationWire) before its flows start.
    /// </summary>
    /// <param name="plain">The connection's socket when it is plaintext (<see cref="MigrationWire.WaitReadable"/>), else null.</param>
    private async Task<bool> ReceiveAsync(Stream stream, Socket? plain, EndPoint? remote, ReadOnlyMemory<byte> header, CancellationTokenSource timeout, CancellationToken cancellationToken)
    {
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "active" });
        string reason;
        var phases = new MigrationPhases();
        phases.Restart();
        try
        {
            var document = await StateStream.ReadAsync(stream, header, timeout.Token).ConfigureAwait(false);
            phases.Mark("read");
            var plan = _state.Prepare(document);
            phases.Mark("check");
            if (plan.HasHandover)
            {
                await stream.WriteAsync(MigrationWire.BuildPrepared(plan.Refusals), timeout.Token).ConfigureAwait(false);
                MigrationWire.WaitReadable(plain);
                var answer = await ReadByteAsync(stream, timeout.Token).ConfigureAwait(false);
                if (answer != MigrationWire.Commit)
                {
                    throw new StateFormatException(answer == MigrationWire.Abort ? "the source withdrew the migration" : "the source went away before it handed its flows over");
                }

                phases.Mark("commit");
            }

            plan.Apply();
            phases.Mark("apply");
            var adoption = plan.Adoption;
            var summary = $"adopted {document.Length} bytes, sections [{string.Join(", ", adoption.Adopted)}]";
            await TryReplyAsync(stream, true, summary, cancellationToken).ConfigureAwait(false);
            phases.Mark("reply");

            if (plan.HasHandover)
            {
                // The source lifts its network lock, then says so; flows start after that.
                using var unlock = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                unlock.CancelAfter(UnlockTimeout);
                try
                {
                    MigrationWire.WaitReadable(plain);
                    await ReadByteAsync(stream, unlock.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is OperationCanceledException or StateFormatException || IoErrors.IsIoFailure(ex))
                {
                    MigrationControlLog.NoUnlock(_logger, remote, ex.Message);
                }

                phases.Mark("unlock");
                plan.Activate();
                phases.Mark("activate");
            }

            _phases = phases.Json;
            _adopted.TrySetResult(adoption);
            Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "completed" });

            // The logs last: the source waits for the reply and then the unlock, the flows for the activation.
            MigrationControlLog.IncomingAdopted(_logger, remote, document.Length, document.Version, string.Join(", ", adoption.Adopted), string.Join(", ", adoption.Unknown));
            MigrationControlLog.IncomingPhaseTimes(_logger, remote, phases.ToString());
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

        await RefuseAsync(stream, remote, reason, cancellationToken).ConfigureAwait(false);
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "failed", ["error-desc"] = reason });
        return false;
    }

    private async Task RefuseAsync(Stream stream, EndPoint? remote, string reason, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _refused);
        MigrationControlLog.IncomingRefused(_logger, remote, reason);
        await TryReplyAsync(stream, false, reason, cancellationToken).ConfigureAwait(false);
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
