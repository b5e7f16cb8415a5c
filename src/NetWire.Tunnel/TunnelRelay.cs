using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Spice.Framing;

namespace NetWire.Tunnel;

/// <summary>
/// The byte relay of one tunnel socket, the same on both sides: a local stream socket (the
/// server's end of a socket pair towards the gateway, or the client's real connection to the
/// service) against SOCKET_DATA / SOCKET_FIN / SOCKET_TOKEN on the channel.
/// </summary>
/// <remarks>
/// How this works (protocol.md §6.7, tokens count SOCKET_DATA messages, not bytes):
/// <code>
///   local socket ──read ≤ max data──▶ SOCKET_DATA   one token each; none left: stop reading
///                                                   (the kernel buffer fills, the TCP window closes)
///   local socket ◀──write──── inbound queue ◀──── SOCKET_DATA from the peer (at most the window we
///                                                  granted; more is a token violation)
///                 every window/4 messages written, SOCKET_TOKEN gives them back
/// </code>
/// Local EOF becomes SOCKET_FIN; the peer's SOCKET_FIN becomes shutdown(SHUT_WR) once the inbound
/// queue is written. Tokens the peer returns may never make more than it first granted (the real
/// server let a peer inflate its window). After local EOF the local socket is watched for a full
/// close (POLLHUP), so a guest or service that went away while the other side is idle does not
/// keep the socket forever. Memory per socket: at most window x max data size inbound, one read
/// buffer outbound.
///
/// A migration (docs/tunnel.md, "Migration") pauses the relay: <see cref="PauseAsync"/> stops
/// both pumps where they send nothing (waiting for tokens, for data, for the local socket to be
/// readable, or for it to take more: a guest paused by its VM's migration, or a slow service,
/// leaves a write blocked, and the rest of that piece is kept, see <see cref="_partial"/>; a
/// channel send in progress finishes first), so the relay's numbers stop changing. The server then takes a <see cref="Snapshot"/> for the state stream and a target
/// rebuilds the relay with <see cref="Restore"/>; the client keeps its relay and moves it to the
/// target's channel (<see cref="Rebind"/>, <see cref="Resume"/>). Bytes a restore carries go
/// first: those for the peer as SOCKET_DATA under the same tokens, those for the local socket
/// before anything received (they were received on the source and need no token).
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync disposes the lifetime; a SemaphoreSlim without AvailableWaitHandle owns no handle.")]
internal sealed class TunnelRelay
{
    private static readonly TimeSpan s_hangupPoll = TimeSpan.FromMilliseconds(250);

    private readonly ushort _id;
    private readonly Socket _socket;
    private readonly Ids _ids;
    private readonly int _maxData;
    private readonly uint _inWindow;
    private readonly uint _outGrant;
    private readonly int _returnBatch;
    private readonly SemaphoreSlim _tokensArrived = new(0, 1);
    private readonly SemaphoreSlim _dataArrived = new(0, 1);
    private readonly ChannelLifetime _lifetime;

    /// <summary>Guards the token counts, the queues and the pause; receive loop and pumps take it.</summary>
    private readonly Lock _gate = new();

    /// <summary>SOCKET_DATA from the peer not yet written, in order (at most the window we granted).</summary>
    private readonly Queue<byte[]> _queue = new();

    /// <summary>Bytes for the local socket that a migration carried: written before <see cref="_queue"/>, no token owed.</summary>
    private readonly Queue<byte[]> _carriedIn = new();

    private MessageConnection _connection;

    /// <summary>
    /// The rest of a piece a pause stopped while the local socket took no more: written first
    /// when the pumps resume, carried by a snapshot; owed its token when it came from
    /// <see cref="_queue"/> (<see cref="_partialOwed"/>). The inbound pump writes both, under the lock.
    /// </summary>
    private byte[]? _partial;
    private bool _partialOwed;

    /// <summary>Bytes for the peer that a migration carried (sent before reading the local socket), and how far they went.</summary>
    private byte[]? _carriedOut;
    private int _carriedOutSent;

    /// <summary>SOCKET_DATA we may still send (the peer's grant minus what we spent, plus returns).</summary>
    private uint _outTokens;

    /// <summary>SOCKET_DATA received from the peer and not yet given back with SOCKET_TOKEN (queued or written).</summary>
    private uint _unreturned;

    /// <summary>Written to the local socket since the last SOCKET_TOKEN (the inbound pump's, read by a paused snapshot).</summary>
    private uint _consumed;

    /// <summary>The peer sent SOCKET_FIN (or closed).</summary>
    private bool _peerFin;

    /// <summary>The peer closed: once the inbound queue is written, everything ends.</summary>
    private bool _closeAfterDrain;

    /// <summary>The inbound pump has written everything and shut the local socket for writing.</summary>
    private bool _inboundDone;

    /// <summary>Our SOCKET_FIN went out (the local socket reached its end).</summary>
    private bool _finSent;

    /// <summary>Cancelled by a pause (and by the end); waits that send nothing use it.</summary>
    private CancellationTokenSource _io;

    /// <summary>Set while paused: the pumps wait for it at their loop's top.</summary>
    private TaskCompletionSource? _resumed;

    /// <summary>Completes when both pumps are parked or ended, while paused.</summary>
    private TaskCompletionSource? _parked;
    private int _parkedPumps;
    private int _endedPumps;

    private long _bytesOut;
    private long _bytesIn;

    /// <param name="inWindow">Tokens we granted the peer: its SOCKET_DATA in flight towards us.</param>
    /// <param name="outGrant">Tokens the peer granted us.</param>
    public TunnelRelay(ushort id, Socket socket, MessageConnection connection, Ids ids, int maxData, uint inWindow, uint outGrant)
    {
        _id = id;
        _socket = socket;
        _connection = connection;
        _ids = ids;
        _maxData = maxData;
        _inWindow = inWindow;
        _outGrant = outGrant;
        _outTokens = outGrant;
        _returnBatch = (int)Math.Max(1, inWindow / 4);
        _lifetime = new ChannelLifetime((_, _) =>
        {
            Wake(_dataArrived);
            Close();
        });
        _io = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);

        // The inbound pump first writes what the local socket takes at once (WriteLocalAsync).
        _socket.Blocking = false;
    }

    /// <summary>Message ids one side sends.</summary>
    public readonly record struct Ids(ushort Data, ushort Fin, ushort Token);

    /// <summary>The server's ids.</summary>
    public static Ids ServerIds => new(TunnelMessages.SocketData, TunnelMessages.SocketFin, TunnelMessages.SocketToken);

    /// <summary>The client's ids.</summary>
    public static Ids ClientIds => new(TunnelMessages.ClientSocketData, TunnelMessages.ClientSocketFin, TunnelMessages.ClientSocketToken);

    /// <summary>Bytes read from the local socket and sent.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>Bytes received and written to the local socket.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>The local socket (the server's socket pair end, the client's service connection).</summary>
    public Socket Socket => _socket;

    /// <summary>True once the relay was aborted or both directions ended.</summary>
    public bool Ended => _lifetime.IsAborted || Volatile.Read(ref _endedPumps) == 2;

    /// <summary>Tokens we hold now (for tests and Describe).</summary>
    public uint OutTokens
    {
        get
        {
            lock (_gate)
            {
                return _outTokens;
            }
        }
    }

    /// <summary>A relay as a migration source left it (<see cref="Snapshot"/>), on a new local socket and channel.</summary>
    public static TunnelRelay Restore(TunnelRelayState state, Socket socket, MessageConnection connection, Ids ids, int maxData)
    {
        var relay = new TunnelRelay(state.Id, socket, connection, ids, maxData, state.InWindow, state.OutGrant)
        {
            _outTokens = state.OutTokens,
            _consumed = state.Consumed,
            _unreturned = state.Consumed + (uint)state.Queued.Count,
            _peerFin = state.PeerFin || state.InboundDone,
            _finSent = state.FinSent,
            _carriedOut = state.ToPeer.Length > 0 ? state.ToPeer : null,
        };
        if (state.ToLocal.Length > 0)
        {
            relay._carriedIn.Enqueue(state.ToLocal);
        }

        foreach (var chunk in state.Queued)
        {
            relay._queue.Enqueue(chunk);
        }

        return relay;
    }

    /// <summary>SOCKET_DATA from the peer; false is a token violation or data after its FIN.</summary>
    public bool OnData(ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            if (_peerFin || _unreturned >= _inWindow)
            {
                return false;
            }

            if (_lifetime.IsAborted)
            {
                return true;
            }

            _queue.Enqueue(data.ToArray());
            _unreturned++;
        }

        Wake(_dataArrived);
        return true;
    }

    /// <summary>SOCKET_FIN from the peer; false when it already sent one.</summary>
    public bool OnFin()
    {
        lock (_gate)
        {
            if (_peerFin)
            {
                return false;
            }

            _peerFin = true;
        }

        Wake(_dataArrived);
        return true;
    }

    /// <summary>SOCKET_TOKEN from the peer; false when it would hold more than it first granted.</summary>
    public bool OnTokens(uint count)
    {
        lock (_gate)
        {
            if ((ulong)_outTokens + count > _outGrant)
            {
                return false;
            }

            _outTokens += count;
        }

        Wake(_tokensArrived);
        return true;
    }

    /// <summary>
    /// The peer closed its end (SOCKET_CLOSED / SOCKET_CLOSE): what it sent before is still written
    /// to the local socket, then both pumps end and the local socket closes.
    /// </summary>
    public void OnPeerClosed()
    {
        bool drained;
        lock (_gate)
        {
            _closeAfterDrain = true;
            _peerFin = true;
            drained = _inboundDone;
        }

        Wake(_dataArrived);
        if (drained)
        {
            Abort();
        }
    }

    /// <summary>Ends both pumps now and closes the local socket (the channel went away); the first call does it, later ones find it done.</summary>
    public void Abort() => _lifetime.Abort(EndReason.Stopping, new OperationCanceledException("tunnel socket relay aborted"));

    /// <summary>
    /// Stops both pumps where they send nothing; true once both are parked (or ended) within
    /// <paramref name="timeout"/>. The relay stays paused until <see cref="Resume"/>.
    /// </summary>
    public async Task<bool> PauseAsync(TimeSpan timeout)
    {
        Task parked;
        CancellationTokenSource io;
        lock (_gate)
        {
            if (_resumed is null)
            {
                _resumed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _parked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _parkedPumps = 0;
                CheckParked();
            }

            parked = _parked!.Task;
            io = _io;
        }

        await io.CancelAsync().ConfigureAwait(false);
        return await Task.WhenAny(parked, Task.Delay(timeout)).ConfigureAwait(false) == parked;
    }

    /// <summary>Lets the pumps run again after <see cref="PauseAsync"/> (on the same channel, or after <see cref="Rebind"/>).</summary>
    public void Resume()
    {
        TaskCompletionSource? resumed;
        CancellationTokenSource old;
        lock (_gate)
        {
            resumed = _resumed;
            if (resumed is null)
            {
                return;
            }

            _resumed = null;
            _parked = null;
            old = _io;
            _io = CancellationTokenSource.CreateLinkedTokenSource(_lifetime.Token);
        }

        resumed.TrySetResult();
        old.Dispose();
    }

    /// <summary>The channel the relay sends on from now (a migrated client's target channel). Only while paused.</summary>
    public void Rebind(MessageConnection connection)
    {
        lock (_gate)
        {
            _connection = connection;
        }
    }

    /// <summary>
    /// A paused relay's state for the state stream; <paramref name="toPeerQueued"/> are bytes
    /// still in the local socket's receive queue (read by the caller with MSG_PEEK), after those
    /// the relay has read. Null when the relay has ended.
    /// </summary>
    public TunnelRelayState? Snapshot(ReadOnlySpan<byte> toPeerQueued)
    {
        lock (_gate)
        {
            if (_lifetime.IsAborted || _closeAfterDrain)
            {
                return null;
            }

            var carried = _carriedOut is { } pending ? pending.AsSpan(_carriedOutSent) : [];
            var toPeer = new byte[carried.Length + toPeerQueued.Length];
            carried.CopyTo(toPeer);
            toPeerQueued.CopyTo(toPeer.AsSpan(carried.Length));
            // A partial piece comes first: from _carriedIn (then it goes on in ToLocal) or from
            // _queue, which is written only once _carriedIn is empty (then it heads Queued, owed its token).
            var toLocal = new List<byte>();
            List<byte[]> queued = [];
            if (_partial is { } partial)
            {
                if (_partialOwed)
                {
                    queued.Add(partial);
                }
                else
                {
                    toLocal.AddRange(partial);
                }
            }

            foreach (var chunk in _carriedIn)
            {
                toLocal.AddRange(chunk);
            }

            queued.AddRange(_queue);

            return new TunnelRelayState
            {
                Id = _id,
                InWindow = _inWindow,
                OutGrant = _outGrant,
                OutTokens = _outTokens,
                Consumed = _consumed,
                PeerFin = _peerFin,
                FinSent = _finSent,
                InboundDone = _inboundDone,
                ToPeer = toPeer,
                ToLocal = [.. toLocal],
                Queued = queued,
            };
        }
    }

    /// <summary>Runs both directions; true when both ended with a FIN (a clean close), false on any failure.</summary>
    public async Task<bool> RunAsync()
    {
        var token = _lifetime.Token;
        var outbound = PumpAsync(OutboundAsync, token);
        var inbound = PumpAsync(InboundAsync, token);
        var first = await Task.WhenAny(outbound, inbound).ConfigureAwait(false);
        if (!await first.ConfigureAwait(false))
        {
            Abort();
        }
        else if (first == outbound)
        {
            // Our FIN is sent; the other direction may stay open (half-close) until the local
            // socket is closed altogether.
            while (!inbound.IsCompleted)
            {
                await Task.WhenAny(inbound, Task.Delay(s_hangupPoll, CancellationToken.None)).ConfigureAwait(false);
                if (!inbound.IsCompleted && SocketPair.PeerClosed(_socket))
                {
                    Abort();
                }
            }
        }

        var clean = await outbound.ConfigureAwait(false) & await inbound.ConfigureAwait(false);
        _lifetime.Dispose();
        return clean;
    }

    /// <summary>Disposes the local socket after a run (the slot is being freed).</summary>
    public void Close()
    {
        try
        {
            _socket.Dispose();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static void Wake(SemaphoreSlim signal)
    {
        if (signal.CurrentCount == 0)
        {
            try
            {
                signal.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    /// <summary>A pause is complete when both pumps are parked or ended. Caller holds the lock.</summary>
    private void CheckParked()
    {
        if (_parked is { } parked && _parkedPumps + _endedPumps >= 2)
        {
            parked.TrySetResult();
        }
    }

    /// <summary>A pump's top of loop: waits while the relay is paused.</summary>
    private async ValueTask ParkIfPausedAsync(CancellationToken cancellationToken)
    {
        Task resumed;
        lock (_gate)
        {
            if (_resumed is null)
            {
                return;
            }

            resumed = _resumed.Task;
            _parkedPumps++;
            CheckParked();
        }

        await resumed.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The token of waits that a pause interrupts.</summary>
    private CancellationToken IoToken
    {
        get
        {
            lock (_gate)
            {
                return _io.Token;
            }
        }
    }

    /// <summary>True when an OperationCanceledException came from a pause, not the end.</summary>
    private bool Paused(OperationCanceledException _) => !_lifetime.Token.IsCancellationRequested;

    private async Task<bool> PumpAsync(Func<CancellationToken, Task<bool>> pump, CancellationToken cancellationToken)
    {
        try
        {
            return await pump(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            lock (_gate)
            {
                _endedPumps++;
                CheckParked();
            }
        }
    }

    private bool TakeToken()
    {
        lock (_gate)
        {
            if (_outTokens == 0)
            {
                return false;
            }

            _outTokens--;
            return true;
        }
    }

    private void ReturnToken()
    {
        lock (_gate)
        {
            _outTokens++;
        }
    }

    private MessageConnection Connection
    {
        get
        {
            lock (_gate)
            {
                return _connection;
            }
        }
    }

    private async Task<bool> OutboundAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _finSent))
        {
            // A migration carried a relay whose FIN had gone out.
            return true;
        }

        var buffer = new byte[_maxData];
        try
        {
            while (true)
            {
                await ParkIfPausedAsync(cancellationToken).ConfigureAwait(false);
                if (!TakeToken())
                {
                    try
                    {
                        await _tokensArrived.WaitAsync(IoToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException ex) when (Paused(ex))
                    {
                    }

                    continue;
                }

                if (TakeCarried(buffer) is var carried and > 0)
                {
                    Interlocked.Add(ref _bytesOut, carried);
                    await Connection.SendAsync(_ids.Data, TunnelMessages.BuildData(_id, buffer.AsSpan(0, carried)), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                int read;
                try
                {
                    read = await _socket.ReceiveAsync(buffer, SocketFlags.None, IoToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (Paused(ex))
                {
                    ReturnToken();
                    continue;
                }

                if (read == 0)
                {
                    ReturnToken();
                    await Connection.SendAsync(_ids.Fin, TunnelMessages.BuildId(_id), cancellationToken).ConfigureAwait(false);
                    Volatile.Write(ref _finSent, true);
                    return true;
                }

                Interlocked.Add(ref _bytesOut, read);
                await Connection.SendAsync(_ids.Data, TunnelMessages.BuildData(_id, buffer.AsSpan(0, read)), cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsEnd(ex))
        {
            return false;
        }
    }

    /// <summary>Copies the next piece of the carried bytes for the peer into <paramref name="buffer"/>; 0 when none are left.</summary>
    private int TakeCarried(byte[] buffer)
    {
        lock (_gate)
        {
            if (_carriedOut is not { } carried)
            {
                return 0;
            }

            var count = Math.Min(buffer.Length, carried.Length - _carriedOutSent);
            carried.AsSpan(_carriedOutSent, count).CopyTo(buffer);
            _carriedOutSent += count;
            if (_carriedOutSent == carried.Length)
            {
                _carriedOut = null;
                _carriedOutSent = 0;
            }

            return count;
        }
    }

    private async Task<bool> InboundAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await ParkIfPausedAsync(cancellationToken).ConfigureAwait(false);
                byte[]? chunk;
                var owed = false;
                bool fin;
                lock (_gate)
                {
                    if (_partial is not null)
                    {
                        (chunk, owed, _partial) = (_partial, _partialOwed, null);
                    }
                    else if (_carriedIn.TryDequeue(out chunk))
                    {
                    }
                    else if (_queue.TryDequeue(out chunk))
                    {
                        owed = true;
                    }

                    fin = _peerFin;
                }

                if (chunk is null)
                {
                    if (fin)
                    {
                        break;
                    }

                    try
                    {
                        await _dataArrived.WaitAsync(IoToken).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException ex) when (Paused(ex))
                    {
                    }

                    continue;
                }

                if (!await WriteLocalAsync(chunk, owed).ConfigureAwait(false))
                {
                    continue;
                }

                Interlocked.Add(ref _bytesIn, chunk.Length);
                if (owed && ++_consumed >= _returnBatch)
                {
                    uint consumed;
                    lock (_gate)
                    {
                        consumed = _consumed;
                        _unreturned -= consumed;
                        _consumed = 0;
                    }

                    await Connection.SendAsync(_ids.Token, TunnelMessages.BuildIdTokens(_id, consumed), cancellationToken).ConfigureAwait(false);
                }
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return false;
            }

            _socket.Shutdown(SocketShutdown.Send);
            bool close;
            lock (_gate)
            {
                close = _closeAfterDrain;
                _inboundDone = true;
            }

            if (close)
            {
                Abort();
            }

            return true;
        }
        catch (Exception ex) when (IsEnd(ex))
        {
            return false;
        }
    }

    /// <summary>
    /// Writes <paramref name="chunk"/> to the local socket; false when a pause came while the socket
    /// took no more, the rest then kept in <see cref="_partial"/>. What the socket takes at once is
    /// written without waiting; when it is full, a one-byte send waits for room: a pause cancels it
    /// cleanly (the byte went or it did not), where a longer send could have gone in part, unknown.
    /// </summary>
    private async Task<bool> WriteLocalAsync(byte[] chunk, bool owed)
    {
        var sent = 0;
        while (sent < chunk.Length)
        {
            var now = _socket.Send(chunk.AsSpan(sent), SocketFlags.None, out var error);
            if (error is not (SocketError.Success or SocketError.WouldBlock))
            {
                throw new SocketException((int)error);
            }

            sent += now;
            if (now > 0)
            {
                continue;
            }

            try
            {
                sent += await _socket.SendAsync(chunk.AsMemory(sent, 1), SocketFlags.None, IoToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (Paused(ex))
            {
                lock (_gate)
                {
                    (_partial, _partialOwed) = (chunk[sent..], owed);
                }

                return false;
            }
        }

        return true;
    }

    /// <summary>A pump's socket or the channel failed, or the relay was aborted under it.</summary>
    private static bool IsEnd(Exception ex) => IoErrors.IsIoFailure(ex) || ChannelLifetime.IsAbortEcho(ex);
}

/// <summary>
/// A paused relay's numbers and bytes (<see cref="TunnelRelay.Snapshot"/>), as the state stream
/// carries them (docs/migration.md, "Tunnel sockets").
/// </summary>
internal sealed record TunnelRelayState
{
    public ushort Id { get; init; }

    /// <summary>Tokens we granted the peer.</summary>
    public uint InWindow { get; init; }

    /// <summary>Tokens the peer granted us.</summary>
    public uint OutGrant { get; init; }

    /// <summary>Tokens we hold.</summary>
    public uint OutTokens { get; init; }

    /// <summary>Peer messages written and not yet given back (with <see cref="Queued"/>: what the peer is owed).</summary>
    public uint Consumed { get; init; }

    public bool PeerFin { get; init; }

    public bool FinSent { get; init; }

    public bool InboundDone { get; init; }

    /// <summary>Bytes for the peer, read or queued in the local socket, not yet sent.</summary>
    public byte[] ToPeer { get; init; } = [];

    /// <summary>Bytes for the local socket that need no token (carried before, or already in the old local socket's queue).</summary>
    public byte[] ToLocal { get; init; } = [];

    /// <summary>SOCKET_DATA from the peer not yet written, one token each.</summary>
    public IReadOnlyList<byte[]> Queued { get; init; } = [];
}
