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
/// How this works. Connections are taken one at a time; each has <see cref="ReadTimeout"/> to
/// deliver a whole stream. With <c>--migration-x509-dir</c> each connection must first complete
/// a mutual TLS handshake within <see cref="HandshakeTimeout"/>: a plaintext stream (its first
/// bytes are peeked, not read) gets a plaintext 'E' reply saying TLS is required, a source
/// without a certificate this target's CA signed fails the handshake; either way nothing of the
/// stream is read, the refusal is logged and counted (<see cref="TlsRefused"/>), and the target
/// keeps waiting. A stream that is refused (wrong magic or version, malformed,
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
    private readonly TlsSettings? _tls;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource<StateAdoption> _adopted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private int _refused;
    private int _tlsRefused;

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

    /// <summary>Completes when a state stream has been adopted.</summary>
    public Task<StateAdoption> Adopted => _adopted.Task;

    /// <summary>Time a connection has to complete the TLS handshake.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Streams refused so far, those refused at the TLS handshake included.</summary>
    public int Refused => Volatile.Read(ref _refused);

    /// <summary>Connections refused at the TLS handshake: plaintext, no or a foreign certificate.</summary>
    public int TlsRefused => Volatile.Read(ref _tlsRefused);

    /// <summary>True when the stream must come over mutual TLS.</summary>
    public bool RequiresTls => _tls is not null;

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

    /// <summary>Reads, checks and adopts one stream; true when adopted.</summary>
    private async Task<bool> ReceiveAsync(Socket socket, CancellationToken cancellationToken)
    {
        var remote = socket.RemoteEndPoint;
        Stream stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            if (_tls is not null)
            {
                if (await SecureAsync(socket, stream, remote, cancellationToken).ConfigureAwait(false) is not { } secured)
                {
                    return false;
                }

                stream = secured;
            }

            return await AdoptAsync(stream, remote, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The mutual TLS handshake; null when the source was refused (logged, counted, the target keeps waiting).</summary>
    private async Task<Stream?> SecureAsync(Socket socket, Stream stream, EndPoint? remote, CancellationToken cancellationToken)
    {
        TlsAccepted accepted;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            timeout.CancelAfter(HandshakeTimeout);
            try
            {
                accepted = await TlsHandshake.AcceptAsync(socket, stream, _tls!, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                accepted = new TlsAccepted(TlsAcceptOutcome.HandshakeFailed, null, $"no TLS handshake within {HandshakeTimeout.TotalSeconds:0.#} s");
            }
        }

        if (accepted.Stream is { } secured)
        {
            MigrationControlLog.IncomingSecured(_logger, remote, accepted.Detail);
            return secured;
        }

        var reason = accepted.Outcome switch
        {
            TlsAcceptOutcome.NotTls => $"this target takes the state over mutual TLS only (--migration-x509-dir); the source sent {accepted.Detail}",
            TlsAcceptOutcome.PeerRefused => $"TLS: the source's certificate is refused: {accepted.Detail}",
            _ => $"TLS handshake failed: {accepted.Detail}",
        };
        Interlocked.Increment(ref _refused);
        Interlocked.Increment(ref _tlsRefused);
        MigrationControlLog.IncomingRefused(_logger, remote, reason);
        if (accepted.Outcome == TlsAcceptOutcome.NotTls)
        {
            // A plaintext source reads a plaintext reply: its query-migrate says why.
            await TryReplyAsync(stream, false, reason, cancellationToken).ConfigureAwait(false);
        }

        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "failed", ["error-desc"] = reason });
        return null;
    }

    private async Task<bool> AdoptAsync(Stream stream, EndPoint? remote, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ReadTimeout);
        Events?.Invoke("MIGRATION", new JsonObject { ["status"] = "active" });
        string reason;
        try
        {
            var document = await StateStream.ReadAsync(stream, timeout.Token).ConfigureAwait(false);
            var adoption = _state.Adopt(document);
            var summary = $"adopted {document.Length} bytes, sections [{string.Join(", ", adoption.Adopted)}]";
            MigrationControlLog.IncomingAdopted(_logger, remote, document.Length, document.Version, string.Join(", ", adoption.Adopted), string.Join(", ", adoption.Unknown));
            _adopted.TrySetResult(adoption);
            await TryReplyAsync(stream, true, summary, cancellationToken).ConfigureAwait(false);
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
