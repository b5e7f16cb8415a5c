using System.Buffers.Binary;
using System.Net.Sockets;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Spice;
using NetWire.Spice.Channels;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Migration;
using NetWire.Stack.Nat;

namespace NetWire.Tunnel;

/// <summary>
/// One linked tunnel channel (type 7), server side: the client's services and its tunnel
/// sockets (protocol.md §6).
/// </summary>
/// <remarks>
/// How this works. After the link the server queues SET_ACK{1, 20} and INIT{max sockets, max
/// data size}. SERVICE_ADD gets a virtual IP from <see cref="TunnelGateway"/> and is answered with
/// SERVICE_IP_MAP; SERVICE_REMOVE takes it away (open sockets keep running). A guest SYN to a
/// service takes the lowest free slot (the connection id) and queues SOCKET_OPEN{id, service,
/// window}; OPEN_ACK makes a socket pair whose far end completes the guest's handshake and whose
/// near end is relayed by <see cref="TunnelRelay"/>. Slot states:
/// <code>
///   WaitOpen ──OPEN_ACK──▶ Open ──relay ends──▶ Closing (sent CLOSE) ──CLOSED_ACK──▶ free
///      │  └─timeout─▶ TimedOut ──OPEN_ACK──▶ Closing     │
///      └─OPEN_NACK──▶ free (guest gets RST)              └─client CLOSED: guest socket closed,
///                                                          CLOSED_ACK sent, free
/// </code>
/// A CLOSE crossing the client's CLOSED is acknowledged by the client (protocol.md §6.6). Violations
/// end the channel (a <see cref="SpiceProtocolException"/>), never the server: an id out of range
/// or for a free slot, a message of the wrong size, data beyond the tokens granted, tokens past
/// the client's own grant, a duplicate service, common migration messages. SOCKET_DATA for a
/// socket already closing is dropped and counted. When the channel ends every socket is closed
/// towards the guest (FIN, or RST for data in flight) and the client's addresses go.
///
/// Migration (docs/tunnel.md, "Migration"), with a client that offered the migration cap and
/// linked to the target: <see cref="FlushAsync"/> pauses every relay, sends MIGRATE{NEED_FLUSH}
/// and waits for the client's MIGRATE_FLUSH_MARK; from then on neither side sends on this channel
/// and whatever the session would send is held. <see cref="Snapshot"/> gives the open sockets for
/// the state stream; <see cref="HandOver"/> lets them go silently, <see cref="ResumeAfterMigration"/>
/// runs them again (the migration failed; the client resumes on MIGRATE_CANCEL). On the target,
/// the session of the same id adopts what the stream carried: after INIT it sends MIGRATE_DATA
/// with the connection ids that continue and restarts their relays.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync disposes the lifetime when the channel has ended.")]
internal sealed class TunnelSession
{
    private readonly long _number;
    private readonly uint _sessionId;
    private readonly SpiceSession? _session;
    private readonly bool _canMigrate;
    private readonly Stream _stream;
    private readonly MessageConnection _connection;
    private readonly TunnelGateway _gateway;
    private readonly TunnelOptions _options;
    private readonly ILogger _logger;
    private readonly AckWindow _ack = new();
    private readonly ChannelLifetime _lifetime;

    /// <summary>Guards the slots and the services; the receive loop, socket tasks and the gateway's SYNs take it.</summary>
    private readonly Lock _gate = new();
    private readonly Slot?[] _slots;
    private readonly Dictionary<uint, (TunnelService Service, uint Address)> _services = [];
    private readonly List<Task> _socketTasks = [];

    /// <summary>Messages the session would have sent while a migration holds the channel still.</summary>
    private readonly List<(ushort Type, byte[] Body)> _held = [];

    /// <summary>A migrated session's services as the source had them: the client adds them again and gets the same addresses.</summary>
    private IReadOnlyList<TunnelServiceState> _preferred = [];
    private MigrationPhase _phase;
    private TaskCompletionSource? _flushMark;

    public TunnelSession(long number, SpiceSession session, Stream stream, bool miniHeader, bool canMigrate, TunnelGateway gateway, ILogger logger)
        : this(number, session.SessionId, stream, miniHeader, gateway, logger)
    {
        _session = session;
        _canMigrate = canMigrate;
    }

    public TunnelSession(long number, uint sessionId, Stream stream, bool miniHeader, TunnelGateway gateway, ILogger logger)
    {
        _number = number;
        _sessionId = sessionId;
        _stream = stream;
        _gateway = gateway;
        _options = gateway.Options;
        _logger = logger;
        _slots = new Slot?[_options.MaxSockets];
        var maxReceive = Math.Max(2 + _options.MaxDataSize, TunnelMessages.MaxServiceAddSize);
        _connection = new MessageConnection(stream, miniHeader, maxReceive, _options.SendQueueCapacity);
        _lifetime = new ChannelLifetime(OnAborting);
    }

    private enum SlotState
    {
        WaitOpen,
        TimedOut,
        Open,
        Closing,
    }

    private enum MigrationPhase
    {
        None,
        Flushing,
        Flushed,
        HandedOver,
    }

    /// <summary>Messages waiting in the send queue towards the client (for tests).</summary>
    internal int QueuedMessages => _connection.QueuedMessages;

    /// <summary>Why the channel ended, once it has.</summary>
    public Exception? AbortReason => _lifetime.Error;

    /// <summary>The SPICE session id (a migration target adopts the source's).</summary>
    public uint SessionId => _sessionId;

    /// <summary>
    /// True when a migration can carry this session's sockets: the client offered the migration
    /// cap and answered MIGRATE_CONNECTED (it will get MIGRATE_END or MIGRATE_CANCEL).
    /// </summary>
    public bool CanMigrate => _canMigrate && _session?.MigrationState == MigrationClientState.Connected && !_lifetime.IsAborted;

    /// <summary>Runs the channel until the client leaves, a violation, or cancellation; owns the stream.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        if (!_gateway.TryAddClient(this))
        {
            TunnelLog.Refused(_logger, _number, $"{_options.MaxClients} tunnel clients already connected");
            await _stream.DisposeAsync().ConfigureAwait(false);
            return;
        }

        var registration = _lifetime.AbortWhenCancelled("server stopping", cancellationToken);
        TunnelLog.ChannelUp(_logger, _number, _sessionId);
        _connection.TrySend(CommonMessages.SetAck, CommonMessages.BuildSetAck(_ack.NextGeneration(), _ack.Window));
        _connection.TrySend(TunnelMessages.Init, TunnelMessages.BuildInit(_options.MaxSockets, (uint)_options.MaxDataSize));
        if (_canMigrate && _gateway.TakeMigrated(_sessionId) is { } migrated)
        {
            AdoptMigrated(migrated);
        }

        var send = _lifetime.GuardAsync(_connection.SendLoopAsync, EndReason.Disconnected, "send loop ended");
        var receive = _lifetime.GuardAsync(ReceiveLoopAsync, EndReason.PeerClosed, "client closed the tunnel channel");
        await Task.WhenAll(send, receive).ConfigureAwait(false);
        Task[] sockets;
        lock (_gate)
        {
            for (var i = 0; i < _slots.Length; i++)
            {
                if (_slots[i] is { } slot)
                {
                    slot.Opened.TrySetException(new SocketException((int)SocketError.ConnectionRefused));
                    slot.Relay?.Abort();
                    _slots[i] = null;
                }
            }

            sockets = [.. _socketTasks];
        }

        _gateway.RemoveClient(this);
        await Task.WhenAll(sockets).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        TunnelLog.ChannelClosed(_logger, _number, _lifetime.Reason ?? EndReason.Failed, _lifetime.Error?.Message ?? "ended");
        await _stream.DisposeAsync().ConfigureAwait(false);

        // The server's stop can still call Abort through the registration: end it (waiting for a
        // callback in flight) before the token source it cancels goes away.
        await registration.DisposeAsync().ConfigureAwait(false);
        _lifetime.Dispose();
    }

    /// <summary>Ends the channel; the first reason wins.</summary>
    public void Abort(Exception reason) => _lifetime.Abort(reason);

    /// <summary>
    /// A guest SYN for service <paramref name="serviceId"/>: queue SOCKET_OPEN and complete with the
    /// far end of the socket pair on OPEN_ACK. Called under the gateway's lock; never blocks.
    /// </summary>
    public Task<Socket> OpenAsync(uint serviceId, FlowKey key, CancellationToken cancellationToken)
    {
        Slot slot;
        bool queued;
        lock (_gate)
        {
            var id = Array.IndexOf(_slots, null);
            if (id < 0 || _lifetime.IsAborted || _phase != MigrationPhase.None)
            {
                _gateway.Counters.Refused();
                return TunnelGateway.Refused();
            }

            slot = new Slot((ushort)id, serviceId, key);
            _slots[id] = slot;
            queued = _connection.TrySend(TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(slot.Id, serviceId, _options.Window));
        }

        TunnelLog.Socket(_logger, _number, slot.Id, $"open requested for service {serviceId}");
        return queued ? WaitOpenAsync(slot, cancellationToken) : QueueOpenAsync(slot, cancellationToken);
    }

    /// <summary>
    /// The send queue was full: the other sockets' SOCKET_DATA fill it as a matter of course, which
    /// is back-pressure, not a fault, so the SOCKET_OPEN waits for room within the open timeout.
    /// The slot is already taken, so an OPEN_ACK finds it.
    /// </summary>
    private async Task<Socket> QueueOpenAsync(Slot slot, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.OpenTimeout);
        try
        {
            await _connection.SendAsync(TunnelMessages.SocketOpen, TunnelMessages.BuildSocketOpen(slot.Id, slot.ServiceId, _options.Window), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
        {
            // Never queued: the client knows nothing of the id, which is free again.
            lock (_gate)
            {
                if (_slots[slot.Id] == slot)
                {
                    _slots[slot.Id] = null;
                }
            }

            _gateway.Counters.Refused();
            TunnelLog.Socket(_logger, _number, slot.Id, $"open for service {slot.ServiceId} refused: {(ex is ChannelClosedException ? "the channel ended" : "no room towards the client in time")}");
            throw new SocketException((int)(ex is ChannelClosedException ? SocketError.ConnectionRefused : SocketError.TimedOut));
        }

        return await WaitOpenAsync(slot, cancellationToken).ConfigureAwait(false);
    }

    private async Task<Socket> WaitOpenAsync(Slot slot, CancellationToken cancellationToken)
    {
        try
        {
            return await slot.Opened.Task.WaitAsync(_options.OpenTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            lock (_gate)
            {
                if (slot.State == SlotState.WaitOpen)
                {
                    // A late OPEN_ACK is answered with CLOSE, a late NACK frees the slot (protocol.md §6.5).
                    slot.State = SlotState.TimedOut;
                }
            }

            _gateway.Counters.Refused();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch (SocketException)
        {
            _gateway.Counters.Refused();
            throw;
        }
    }

    /// <summary>The first abort: a violation is counted, and no more sending.</summary>
    private void OnAborting(EndReason reason, Exception error)
    {
        if (reason == EndReason.ProtocolError)
        {
            _gateway.Counters.ProtocolError();
        }

        _connection.CompleteSending(error);
    }

    private async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await _connection.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (!await HandleAsync(header.Type, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>Acts on one message; false when the client said it is leaving.</summary>
    private async ValueTask<bool> HandleAsync(ushort type, CancellationToken cancellationToken)
    {
        var body = _connection.Body;
        switch (type)
        {
            case CommonMessages.AckSync:
                TunnelMessages.Expect(body, 4, "ACK_SYNC");
                _ack.OnAckSync(BinaryPrimitives.ReadUInt32LittleEndian(body));
                return true;
            case CommonMessages.Ack:
                _ack.OnAck();
                return true;
            case CommonMessages.Pong:
                return true;
            case CommonMessages.MigrateFlushMark when _flushMark is { } mark:
                TunnelMessages.Expect(body, 0, "MIGRATE_FLUSH_MARK");
                mark.TrySetResult();
                return true;
            case CommonMessages.ClientDisconnecting:
                _lifetime.Abort(EndReason.PeerLeft, new EndOfStreamException("client disconnecting"));
                return false;
            case TunnelMessages.ServiceAdd:
                await AddServiceAsync(CheckServiceAdd(body), cancellationToken).ConfigureAwait(false);
                return true;
            case TunnelMessages.ServiceRemove:
                TunnelMessages.Expect(body, 4, "SERVICE_REMOVE");
                RemoveService(BinaryPrimitives.ReadUInt32LittleEndian(body));
                return true;
            case TunnelMessages.SocketOpenAck:
                TunnelMessages.Expect(body, 6, "SOCKET_OPEN_ACK");
                OnOpenAck(BinaryPrimitives.ReadUInt16LittleEndian(body), BinaryPrimitives.ReadUInt32LittleEndian(body[2..]));
                return true;
            case TunnelMessages.SocketOpenNack:
                TunnelMessages.Expect(body, 2, "SOCKET_OPEN_NACK");
                OnOpenNack(BinaryPrimitives.ReadUInt16LittleEndian(body));
                return true;
            case TunnelMessages.ClientSocketFin:
                TunnelMessages.Expect(body, 2, "SOCKET_FIN");
                OnFin(BinaryPrimitives.ReadUInt16LittleEndian(body));
                return true;
            case TunnelMessages.SocketClosed:
                TunnelMessages.Expect(body, 2, "SOCKET_CLOSED");
                OnClosed(BinaryPrimitives.ReadUInt16LittleEndian(body));
                return true;
            case TunnelMessages.ClientSocketClosedAck:
                TunnelMessages.Expect(body, 2, "SOCKET_CLOSED_ACK");
                OnClosedAck(BinaryPrimitives.ReadUInt16LittleEndian(body));
                return true;
            case TunnelMessages.ClientSocketData:
                if (body.Length < 2)
                {
                    ThrowHelper.Protocol($"SOCKET_DATA of {body.Length} bytes has no connection id");
                }

                OnData(BinaryPrimitives.ReadUInt16LittleEndian(body), body[2..]);
                return true;
            case TunnelMessages.ClientSocketToken:
                TunnelMessages.Expect(body, 6, "SOCKET_TOKEN");
                OnToken(BinaryPrimitives.ReadUInt16LittleEndian(body), BinaryPrimitives.ReadUInt32LittleEndian(body[2..]));
                return true;
            default:
                // MIGRATE_FLUSH_MARK / MIGRATE_DATA outside a migration, and unknown ids.
                ThrowHelper.Protocol($"tunnel message type {type} is not expected here");
                return false;
        }
    }

    private TunnelService CheckServiceAdd(ReadOnlySpan<byte> body)
    {
        var service = TunnelMessages.ParseServiceAdd(body, out var error);
        if (service is null)
        {
            ThrowHelper.Protocol(error);
        }

        lock (_gate)
        {
            if (_services.ContainsKey(service.Id))
            {
                ThrowHelper.Protocol($"SERVICE_ADD for service id {service.Id}, which exists");
            }

            if (_services.Count >= _options.MaxServices)
            {
                ThrowHelper.Protocol($"SERVICE_ADD beyond {_options.MaxServices} services");
            }
        }

        return service;
    }

    private async ValueTask AddServiceAsync(TunnelService service, CancellationToken cancellationToken)
    {
        var preferred = _preferred.FirstOrDefault(p => p.Id == service.Id && p.Group == service.Group && p.Port == service.Port)?.Address ?? 0;
        var address = _gateway.AddService(this, service, out var error, preferred) ?? throw new SpiceProtocolException($"SERVICE_ADD {service.Id}: {error}");
        lock (_gate)
        {
            _services.Add(service.Id, (service, address));
        }

        TunnelLog.ServiceAdded(_logger, _number, service.Id, service.Name, service.Port, Ip.Format(address));
        await _connection.SendAsync(TunnelMessages.ServiceIpMap, TunnelMessages.BuildServiceIpMap(service.Id, address), cancellationToken).ConfigureAwait(false);
    }

    private void RemoveService(uint id)
    {
        (TunnelService Service, uint Address) entry;
        lock (_gate)
        {
            if (!_services.Remove(id, out entry))
            {
                ThrowHelper.Protocol($"SERVICE_REMOVE for service id {id}, which does not exist");
            }
        }

        _gateway.RemoveService(this, entry.Address, entry.Service.Port);
        TunnelLog.ServiceRemoved(_logger, _number, id);
    }

    /// <summary>The slot of a message's connection id; a violation when out of range or free. Caller holds the lock.</summary>
    private Slot SlotFor(ushort id, string message)
    {
        if (id >= _slots.Length)
        {
            ThrowHelper.Protocol($"{message} for connection id {id} (at most {_slots.Length - 1})");
        }

        return _slots[id] ?? throw new SpiceProtocolException($"{message} for connection id {id}, which is not open");
    }

    private void OnOpenAck(ushort id, uint tokens)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_OPEN_ACK");
            if (slot.State == SlotState.TimedOut)
            {
                slot.State = SlotState.Closing;
                _connection.TrySend(TunnelMessages.SocketClose, TunnelMessages.BuildId(id));
                return;
            }

            if (slot.State != SlotState.WaitOpen)
            {
                ThrowHelper.Protocol($"SOCKET_OPEN_ACK for connection id {id} in state {slot.State}");
            }

            var (near, far) = SocketPair.Create();
            slot.Relay = new TunnelRelay(id, near, _connection, TunnelRelay.ServerIds, _options.MaxDataSize, _options.Window, Math.Min(tokens, _options.MaxClientWindow));
            slot.State = SlotState.Open;
            _gateway.Counters.Open();
            _socketTasks.RemoveAll(static t => t.IsCompleted);
            _socketTasks.Add(RunSocketAsync(slot));
            if (!slot.Opened.TrySetResult(far))
            {
                // The guest's handshake gave up a moment ago.
                far.Dispose();
            }
        }
    }

    private void OnOpenNack(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_OPEN_NACK");
            if (slot.State is not (SlotState.WaitOpen or SlotState.TimedOut))
            {
                ThrowHelper.Protocol($"SOCKET_OPEN_NACK for connection id {id} in state {slot.State}");
            }

            _slots[id] = null;
            slot.Opened.TrySetException(new SocketException((int)SocketError.ConnectionRefused));
        }

        TunnelLog.Socket(_logger, _number, id, "refused by the client");
    }

    private void OnFin(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_FIN");
            if (slot.State == SlotState.Closing)
            {
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnFin())
            {
                ThrowHelper.Protocol($"SOCKET_FIN for connection id {id} in state {slot.State} (or a second one)");
            }
        }
    }

    private void OnClosed(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_CLOSED");
            if (slot.State == SlotState.Closing)
            {
                // Crossed our CLOSE: the client acknowledges it (protocol.md §6.6).
                return;
            }

            if (slot.State != SlotState.Open || slot.ClientClosed)
            {
                ThrowHelper.Protocol($"SOCKET_CLOSED for connection id {id} in state {slot.State}");
            }

            slot.ClientClosed = true;
            slot.Relay!.OnPeerClosed();
        }
    }

    private void OnClosedAck(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_CLOSED_ACK");
            if (slot.State != SlotState.Closing)
            {
                ThrowHelper.Protocol($"SOCKET_CLOSED_ACK for connection id {id} in state {slot.State}");
            }

            _slots[id] = null;
        }

        TunnelLog.Socket(_logger, _number, id, "closed");
    }

    private void OnData(ushort id, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_DATA");
            if (slot.State == SlotState.Closing || slot.ClientClosed)
            {
                _gateway.Counters.DropData();
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnData(data))
            {
                ThrowHelper.Protocol($"SOCKET_DATA for connection id {id} in state {slot.State}: no tokens left, or after its FIN");
            }
        }
    }

    private void OnToken(ushort id, uint count)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_TOKEN");
            if (slot.State == SlotState.Closing)
            {
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnTokens(count))
            {
                ThrowHelper.Protocol($"SOCKET_TOKEN of {count} for connection id {id} in state {slot.State}: more than the client granted");
            }
        }
    }

    /// <summary>Relays an open socket, then closes it with the client (CLOSE, or CLOSED_ACK after the client's CLOSED).</summary>
    private async Task RunSocketAsync(Slot slot)
    {
        await Task.Yield();
        var clean = await slot.Relay!.RunAsync().ConfigureAwait(false);
        slot.Relay.Close();
        ushort message;
        lock (_gate)
        {
            if (_slots[slot.Id] != slot)
            {
                return;
            }

            if (slot.ClientClosed)
            {
                _slots[slot.Id] = null;
                message = TunnelMessages.SocketClosedAck;
            }
            else
            {
                slot.State = SlotState.Closing;
                message = TunnelMessages.SocketClose;
            }
        }

        TunnelLog.Socket(_logger, _number, slot.Id, clean ? "ended cleanly" : "ended (reset or aborted)");
        lock (_gate)
        {
            if (_phase != MigrationPhase.None)
            {
                // The channel is held still for a migration: sent if it resumes, dropped if it moves.
                _held.Add((message, TunnelMessages.BuildId(slot.Id)));
                return;
            }
        }

        try
        {
            await _connection.SendAsync(message, TunnelMessages.BuildId(slot.Id), _lifetime.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ChannelLifetime.IsAbortEcho(ex))
        {
        }
    }

    /// <summary>
    /// Source, at a migration's freeze: pauses every relay, sends MIGRATE{NEED_FLUSH} and waits for
    /// the client's MIGRATE_FLUSH_MARK. True when the channel is still on both sides within
    /// <paramref name="timeout"/>; otherwise its sockets do not move (and run again at the thaw).
    /// </summary>
    public async Task<bool> FlushAsync(TimeSpan timeout)
    {
        var deadline = Task.Delay(timeout);
        List<TunnelRelay> relays = [];
        TaskCompletionSource mark;
        lock (_gate)
        {
            if (_phase != MigrationPhase.None)
            {
                return false;
            }

            _phase = MigrationPhase.Flushing;
            mark = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _flushMark = mark;
            foreach (var slot in _slots)
            {
                if (slot?.Relay is { } relay)
                {
                    relays.Add(relay);
                }
            }
        }

        var paused = await Task.WhenAll(relays.Select(r => r.PauseAsync(timeout))).ConfigureAwait(false);
        if (paused.Contains(false))
        {
            TunnelLog.Migration(_logger, _number, "a socket did not pause in time; its sockets stay");
            return false;
        }

        // The relays are paused, so what fills the send queue drains; NEED_FLUSH waits for room.
        var message = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(message, TunnelMessages.MigrateNeedFlush);
        using (var room = new CancellationTokenSource(timeout))
        {
            try
            {
                await _connection.SendAsync(CommonMessages.Migrate, message, room.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ChannelClosedException)
            {
                TunnelLog.Migration(_logger, _number, "no room for MIGRATE{NEED_FLUSH} in time; its sockets stay");
                return false;
            }
        }

        if (await Task.WhenAny(mark.Task, deadline).ConfigureAwait(false) != mark.Task)
        {
            TunnelLog.Migration(_logger, _number, $"no MIGRATE_FLUSH_MARK within {timeout.TotalMilliseconds:0} ms; its sockets stay");
            return false;
        }

        lock (_gate)
        {
            _phase = MigrationPhase.Flushed;
        }

        TunnelLog.Migration(_logger, _number, $"flushed, {relays.Count} sockets paused");
        return true;
    }

    /// <summary>The flow keys of this session's sockets (to say why those that do not move are reset).</summary>
    public List<FlowKey> Keys()
    {
        lock (_gate)
        {
            return [.. _slots.Where(s => s is not null).Select(s => s!.Key)];
        }
    }

    /// <summary>
    /// Source, flushed and with the gateway frozen: the session's moving sockets. <paramref name="farOf"/>
    /// gives the gateway's end of a socket pair when its connection moves; what both ends still
    /// hold in their queues is read with MSG_PEEK, so a thaw finds everything where it was.
    /// </summary>
    public TunnelSessionState Snapshot(Func<FlowKey, Socket?> farOf)
    {
        var state = new TunnelSessionState { SessionId = _sessionId };
        List<Slot> open = [];
        lock (_gate)
        {
            foreach (var (id, (service, address)) in _services)
            {
                state.Services.Add(new TunnelServiceState(id, service.Group, service.Port, address));
            }

            open.AddRange(_slots.Where(s => s is { State: SlotState.Open, ClientClosed: false, Relay: not null })!);
        }

        // Outside this lock: farOf takes the gateway's, which comes first in the lock order.
        foreach (var slot in open)
        {
            if (farOf(slot.Key) is not { } far || slot.Relay!.Snapshot(SocketPair.Peek(slot.Relay.Socket)) is not { } relay)
            {
                continue;
            }

            // What the relay wrote into the pair and the gateway has not read is older than what the relay still holds.
            state.Sockets.Add(new TunnelSocketState(slot.ServiceId, slot.Key, relay with { ToLocal = [.. SocketPair.Peek(far), .. relay.ToLocal] }));
        }

        return state;
    }

    /// <summary>Source: the target has the moving sockets: they go without a word (the client keeps its ends), and the channel stays silent.</summary>
    public void HandOver()
    {
        lock (_gate)
        {
            _phase = MigrationPhase.HandedOver;
            _held.Clear();
            for (var i = 0; i < _slots.Length; i++)
            {
                if (_slots[i] is { } slot)
                {
                    _slots[i] = null;
                    slot.Opened.TrySetException(new SocketException((int)SocketError.ConnectionReset));
                    slot.Relay?.Abort();
                }
            }
        }

        TunnelLog.Migration(_logger, _number, "sockets handed over");
    }

    /// <summary>Source: the migration failed: the relays run again and what was held is sent.</summary>
    public void ResumeAfterMigration()
    {
        List<(ushort Type, byte[] Body)> held;
        List<TunnelRelay> relays = [];
        lock (_gate)
        {
            if (_phase is MigrationPhase.None or MigrationPhase.HandedOver)
            {
                return;
            }

            _phase = MigrationPhase.None;
            _flushMark = null;
            held = [.. _held];
            _held.Clear();
            foreach (var slot in _slots)
            {
                if (slot?.Relay is { } relay)
                {
                    relays.Add(relay);
                }
            }
        }

        foreach (var (type, body) in held)
        {
            _connection.TrySend(type, body);
        }

        foreach (var relay in relays)
        {
            relay.Resume();
        }

        TunnelLog.Migration(_logger, _number, "resumed on the source");
    }

    /// <summary>Target: the sockets a migration carried for this session run again on this channel, after MIGRATE_DATA names them.</summary>
    private void AdoptMigrated(MigratedTunnel migrated)
    {
        var ids = new List<ushort>();
        lock (_gate)
        {
            foreach (var socket in migrated.Sockets)
            {
                var id = socket.State.Id;
                if (!socket.Attached || id >= _slots.Length || _slots[id] is not null)
                {
                    // Its flow did not move (the gateway refused it), or this server has fewer sockets.
                    socket.Near.Dispose();
                    if (!socket.Attached)
                    {
                        socket.Far.Dispose();
                    }

                    continue;
                }

                var slot = new Slot(id, socket.ServiceId, socket.Key)
                {
                    State = SlotState.Open,
                    Relay = TunnelRelay.Restore(socket.State, socket.Near, _connection, TunnelRelay.ServerIds, _options.MaxDataSize),
                };
                _slots[id] = slot;
                ids.Add(id);
            }

            _connection.TrySend(CommonMessages.MigrateData, TunnelMessages.BuildMigrateData(ids));
            foreach (var id in ids)
            {
                _gateway.Counters.Open();
                _socketTasks.Add(RunSocketAsync(_slots[id]!));
            }
        }

        _preferred = migrated.Services;
        TunnelLog.Migration(_logger, _number, $"{ids.Count} sockets continue from the source");
    }

    private sealed class Slot(ushort id, uint serviceId, FlowKey key)
    {
        public ushort Id { get; } = id;

        public uint ServiceId { get; } = serviceId;

        /// <summary>The guest connection's key in the gateway.</summary>
        public FlowKey Key { get; } = key;

        public SlotState State { get; set; }

        public bool ClientClosed { get; set; }

        public TunnelRelay? Relay { get; set; }

        public TaskCompletionSource<Socket> Opened { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
