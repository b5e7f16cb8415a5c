using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Spice;
using NetWire.Spice.Channels;
using NetWire.Spice.Framing;

namespace NetWire.Tunnel.Client;

/// <summary>
/// The client side of one linked tunnel channel: adds the services after INIT, opens a real
/// TCP connection to the target for each SOCKET_OPEN, and relays it (protocol.md §6.6, §6.7).
/// </summary>
/// <remarks>
/// How this works. SET_ACK is answered with ACK_SYNC and then one ACK per window of messages
/// received. Before INIT nothing but SET_ACK, PING and NOTIFY is accepted. Slot states:
/// <code>
///   SOCKET_OPEN ─▶ Connecting ──connected──▶ OPEN_ACK, Open ──relay ends──▶ CLOSED sent ──CLOSED_ACK──▶ free
///                       └──failed──▶ OPEN_NACK, free          │   └── CLOSE (crossing) ──▶ CLOSED_ACK, free
///                                                             └── CLOSE ──▶ target closed, CLOSED_ACK, free
/// </code>
/// The server's violations (an id out of range or in use, data beyond the tokens granted, a
/// wrong size, tunnel messages before INIT, an INIT outside the limits) end the channel; the
/// caller reconnects.
///
/// Migration (docs/tunnel.md, "Migration"): the channel offers the migration cap. MIGRATE with
/// NEED_FLUSH pauses every relay (no service socket is read, so backpressure holds; nothing is
/// sent) and is answered with MIGRATE_FLUSH_MARK; from then on whatever the channel would send is
/// held. MIGRATE_CANCEL on main resumes it (<see cref="ResumeAfterCancel"/>). When the session
/// moves to the target instead, the next channel takes this one's sockets (the continued
/// channel): after the target's INIT, its MIGRATE_DATA names the sockets that continue, which
/// move to the new channel and resume; the others are closed. A target that sends anything else
/// first knows nothing of them, and they are closed too.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync disposes the lifetime when the channel has ended.")]
internal sealed class TunnelClientChannel
{
    /// <summary>Tokens granted to the server in OPEN_ACK (spicec: 60).</summary>
    public const uint Window = 32;

    /// <summary>Largest max_socket_data_size accepted in INIT.</summary>
    public const uint MaxDataSizeLimit = 1 << 20;

    /// <summary>Largest max_num_of_sockets accepted in INIT.</summary>
    public const ushort MaxSocketsLimit = 4096;

    /// <summary>Messages queued towards the server before senders wait (the sockets' SOCKET_DATA fills it).</summary>
    internal const int SendQueueCapacity = 256;

    /// <summary>Largest body read from the server before INIT (and for anything but SOCKET_DATA after it).</summary>
    private const int ControlMessageLimit = 4096;

    private readonly MessageConnection _connection;
    private readonly IReadOnlyList<TunnelServiceSpec> _services;
    private readonly Action<TunnelServiceSpec, IPAddress> _published;
    private readonly ILogger _logger;
    private readonly ChannelLifetime _lifetime;
    private readonly Lock _gate = new();
    private readonly List<Task> _socketTasks = [];

    /// <summary>The receive loop's answers to the message it is handling, sent before it reads the next one.</summary>
    private readonly List<(ushort Type, byte[] Body)> _replies = [];

    /// <summary>The sockets' messages held while the channel is flushed for a migration.</summary>
    private readonly List<(ushort Type, byte[] Body)> _held = [];
    private Slot?[] _slots = [];

    /// <summary>A flushed source channel whose sockets this one takes after the target's INIT; null once decided.</summary>
    private TunnelClientChannel? _continued;
    private bool _flushed;
    private bool _handedOff;
    private int _maxData;
    private bool _initialized;
    private uint _ackWindow;
    private uint _received;

    public TunnelClientChannel(Stream stream, bool miniHeader, IReadOnlyList<TunnelServiceSpec> services, Action<TunnelServiceSpec, IPAddress> published, ILogger logger, TunnelClientChannel? continued = null)
    {
        _continued = continued;
        _services = services;
        _published = published;
        _logger = logger;
        _connection = new MessageConnection(stream, miniHeader, (int)MaxDataSizeLimit + 2, SendQueueCapacity);
        _lifetime = new ChannelLifetime((_, error) => _connection.CompleteSending(error));
    }

    private enum SlotState
    {
        Connecting,
        Open,
        ClosedSent,
        ServerClosed,
    }

    /// <summary>Why the channel ended.</summary>
    public Exception? AbortReason => _lifetime.Error;

    /// <summary>Why the channel ended, by kind.</summary>
    public EndReason? EndedBy => _lifetime.Reason;

    /// <summary>True once INIT arrived and the services were sent.</summary>
    public bool Initialized => Volatile.Read(ref _initialized);

    /// <summary>Messages waiting in the send queue (for tests).</summary>
    internal int QueuedMessages => _connection.QueuedMessages;

    /// <summary>True when the channel ended flushed: its sockets wait for the next channel, or for <see cref="DropContinued"/>.</summary>
    public bool HandedOff
    {
        get
        {
            lock (_gate)
            {
                return _handedOff;
            }
        }
    }

    /// <summary>MIGRATE_CANCEL: the migration failed and the source runs on; held messages go out and the relays run again.</summary>
    public void ResumeAfterCancel()
    {
        List<(ushort Type, byte[] Body)> held;
        List<TunnelRelay> relays;
        lock (_gate)
        {
            if (!_flushed || _handedOff)
            {
                return;
            }

            _flushed = false;
            held = [.. _held];
            _held.Clear();
            relays = [.. _slots.Where(s => s?.Relay is not null).Select(s => s!.Relay!)];
        }

        _ = SendHeldAsync(held);
        foreach (var relay in relays)
        {
            relay.Resume();
        }

        TunnelLog.ClientMigration(_logger, "cancelled; sockets resume on the source");
    }

    /// <summary>A flushed channel's sockets will not continue anywhere: they close.</summary>
    public void DropContinued()
    {
        lock (_gate)
        {
            foreach (var slot in _slots)
            {
                slot?.Relay?.Abort();
                slot?.Connect.Cancel();
            }

            _slots = [];
        }
    }

    /// <summary>Runs until the server closes the channel, a violation, or cancellation.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var registration = _lifetime.AbortWhenCancelled("stopping", cancellationToken);
        var send = _lifetime.GuardAsync(_connection.SendLoopAsync, EndReason.Disconnected, "send loop ended");
        var receive = _lifetime.GuardAsync(ReceiveLoopAsync, EndReason.PeerClosed, "the server closed the tunnel channel");
        await Task.WhenAll(send, receive).ConfigureAwait(false);
        Task[] sockets = [];
        lock (_gate)
        {
            // Flushed: the sockets wait for the target's channel (or DropContinued).
            _handedOff = _flushed;
            if (!_handedOff)
            {
                foreach (var slot in _slots)
                {
                    slot?.Relay?.Abort();
                    slot?.Connect.Cancel();
                }

                sockets = [.. _socketTasks];
            }
        }

        Interlocked.Exchange(ref _continued, null)?.DropContinued();
        await Task.WhenAll(sockets).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _lifetime.Dispose();
    }

    /// <summary>Ends the channel; the first reason wins.</summary>
    public void Abort(Exception reason) => _lifetime.Abort(reason);

    private async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await _connection.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (header.Type != TunnelMessages.SocketData && _connection.LastSize > ControlMessageLimit)
            {
                ThrowHelper.Protocol($"tunnel message {header.Type} of {_connection.LastSize} bytes");
            }

            var flush = header.Type == CommonMessages.Migrate && Flags(_connection.Body) is var flags && (flags & TunnelMessages.MigrateNeedFlush) != 0;
            if (!flush)
            {
                Handle(header.Type, _connection.Body);
            }

            // Answers wait for room like the sockets' data do: with every socket sending, the
            // queue is full as a matter of course, which is back-pressure, not a fault.
            foreach (var (type, body) in _replies)
            {
                await _connection.SendAsync(type, body, cancellationToken).ConfigureAwait(false);
            }

            _replies.Clear();
            if (_ackWindow > 0 && ++_received % _ackWindow == 0)
            {
                await _connection.SendAsync(CommonMessages.Ack, [], cancellationToken).ConfigureAwait(false);
            }

            if (flush)
            {
                await FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static uint Flags(ReadOnlySpan<byte> body)
    {
        TunnelMessages.Expect(body, 4, "MIGRATE");
        return BinaryPrimitives.ReadUInt32LittleEndian(body);
    }

    /// <summary>MIGRATE{NEED_FLUSH}: every relay pauses, then MIGRATE_FLUSH_MARK is the last message on this channel.</summary>
    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        List<TunnelRelay> relays;
        lock (_gate)
        {
            _flushed = true;
            relays = [.. _slots.Where(s => s?.Relay is not null).Select(s => s!.Relay!)];
        }

        // A relay finishing a write to a service that does not read can hold this up; the
        // server stops waiting after its own timeout and resets these sockets.
        await Task.WhenAll(relays.Select(r => r.PauseAsync(Timeout.InfiniteTimeSpan))).WaitAsync(cancellationToken).ConfigureAwait(false);
        await _connection.SendAsync(CommonMessages.MigrateFlushMark, [], cancellationToken).ConfigureAwait(false);
        TunnelLog.ClientMigration(_logger, $"flushed, {relays.Count} sockets paused");
    }

    /// <summary>Sends what a flush held back, in order, once a cancelled migration lets the channel run again.</summary>
    private async Task SendHeldAsync(List<(ushort Type, byte[] Body)> held)
    {
        foreach (var (type, body) in held)
        {
            if (!await SendForSocketAsync(type, body).ConfigureAwait(false))
            {
                return;
            }
        }
    }

    /// <summary>
    /// The first message after a target's INIT, on a channel that continues a flushed one:
    /// MIGRATE_DATA names the sockets that continue; anything else means none does.
    /// </summary>
    private void TakeContinued(ushort type, ReadOnlySpan<byte> body)
    {
        var continued = Interlocked.Exchange(ref _continued, null);
        if (type != CommonMessages.MigrateData)
        {
            continued?.DropContinued();
            if (continued is not null)
            {
                TunnelLog.ClientMigration(_logger, "the target carried no sockets; they close");
            }

            return;
        }

        var ids = TunnelMessages.ParseMigrateData(body) ?? throw new SpiceProtocolException($"MIGRATE_DATA of {body.Length} bytes");
        var moved = 0;
        lock (_gate)
        {
            Slot?[] old = [];
            if (continued is not null)
            {
                lock (continued._gate)
                {
                    old = continued._slots;
                    continued._slots = [];
                }
            }

            foreach (var id in ids)
            {
                if (id >= _slots.Length || _slots[id] is not null)
                {
                    ThrowHelper.Protocol($"MIGRATE_DATA names connection id {id}, out of range or twice");
                }

                var slot = id < old.Length ? old[id] : null;
                if (id < old.Length)
                {
                    old[id] = null;
                }

                if (slot is { State: SlotState.Open, Relay: { Ended: false } relay })
                {
                    slot.Owner = this;
                    relay.Rebind(_connection);
                    _slots[id] = slot;
                    _socketTasks.Add(slot.Run!);
                    relay.Resume();
                    moved++;
                    continue;
                }

                // Gone here while the server kept it: its end is told on this channel.
                slot?.Relay?.Abort();
                _slots[id] = new Slot(id, _services[0], 0) { State = SlotState.ClosedSent, Owner = this };
                Send(TunnelMessages.SocketClosed, TunnelMessages.BuildId(id));
            }

            foreach (var slot in old)
            {
                slot?.Relay?.Abort();
                slot?.Connect.Cancel();
            }
        }

        TunnelLog.ClientMigration(_logger, $"{moved} sockets continue on the target");
    }

    private void Handle(ushort type, ReadOnlySpan<byte> body)
    {
        if (_initialized && Volatile.Read(ref _continued) is not null || (type == CommonMessages.MigrateData && _initialized))
        {
            TakeContinued(type, body);
            if (type == CommonMessages.MigrateData)
            {
                return;
            }
        }

        switch (type)
        {
            case CommonMessages.SetAck:
                TunnelMessages.Expect(body, 8, "SET_ACK");
                _ackWindow = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
                _received = 0;
                Send(CommonMessages.AckSync, body[..4].ToArray());
                return;
            case CommonMessages.Ping:
                if (body.Length < 12)
                {
                    ThrowHelper.Protocol($"PING of {body.Length} bytes");
                }

                Send(CommonMessages.Pong, body[..12].ToArray());
                return;
            case CommonMessages.Notify:
            case CommonMessages.WaitForChannels:
                return;
            case CommonMessages.Disconnecting:
                ThrowHelper.Protocol("the server is disconnecting");
                return;
            case TunnelMessages.Init:
                OnInit(body);
                return;
        }

        if (!_initialized)
        {
            ThrowHelper.Protocol($"tunnel message {type} before INIT");
        }

        switch (type)
        {
            case TunnelMessages.ServiceIpMap:
                OnIpMap(body);
                break;
            case TunnelMessages.SocketOpen:
                TunnelMessages.Expect(body, 10, "SOCKET_OPEN");
                OnOpen(BinaryPrimitives.ReadUInt16LittleEndian(body), BinaryPrimitives.ReadUInt32LittleEndian(body[2..]), BinaryPrimitives.ReadUInt32LittleEndian(body[6..]));
                break;
            case TunnelMessages.SocketFin:
                TunnelMessages.Expect(body, 2, "SOCKET_FIN");
                OnFin(BinaryPrimitives.ReadUInt16LittleEndian(body));
                break;
            case TunnelMessages.SocketClose:
                TunnelMessages.Expect(body, 2, "SOCKET_CLOSE");
                OnClose(BinaryPrimitives.ReadUInt16LittleEndian(body));
                break;
            case TunnelMessages.SocketData:
                if (body.Length < 2 || body.Length - 2 > _maxData)
                {
                    ThrowHelper.Protocol($"SOCKET_DATA of {body.Length} bytes (data at most {_maxData})");
                }

                OnData(BinaryPrimitives.ReadUInt16LittleEndian(body), body[2..]);
                break;
            case TunnelMessages.SocketClosedAck:
                TunnelMessages.Expect(body, 2, "SOCKET_CLOSED_ACK");
                OnClosedAck(BinaryPrimitives.ReadUInt16LittleEndian(body));
                break;
            case TunnelMessages.SocketToken:
                TunnelMessages.Expect(body, 6, "SOCKET_TOKEN");
                OnToken(BinaryPrimitives.ReadUInt16LittleEndian(body), BinaryPrimitives.ReadUInt32LittleEndian(body[2..]));
                break;
            default:
                ThrowHelper.Protocol($"tunnel message type {type} is not expected here");
                break;
        }
    }

    /// <summary>Queues an answer to the message being handled; the receive loop sends it next.</summary>
    private void Send(ushort type, byte[] body) => _replies.Add((type, body));

    private void OnInit(ReadOnlySpan<byte> body)
    {
        TunnelMessages.Expect(body, 6, "INIT");
        if (_initialized)
        {
            ThrowHelper.Protocol("a second INIT");
        }

        var sockets = BinaryPrimitives.ReadUInt16LittleEndian(body);
        var maxData = BinaryPrimitives.ReadUInt32LittleEndian(body[2..]);
        if (sockets == 0 || sockets > MaxSocketsLimit || maxData == 0 || maxData > MaxDataSizeLimit)
        {
            ThrowHelper.Protocol($"INIT with {sockets} sockets of {maxData} bytes (at most {MaxSocketsLimit} of {MaxDataSizeLimit})");
        }

        lock (_gate)
        {
            _slots = new Slot?[sockets];
            _maxData = (int)maxData;
        }

        Volatile.Write(ref _initialized, true);
        var groups = new List<string>();
        for (var i = 0; i < _services.Count; i++)
        {
            var spec = _services[i];
            var group = groups.IndexOf(spec.TargetHost);
            if (group < 0)
            {
                group = groups.Count;
                groups.Add(spec.TargetHost);
            }

            var printer = spec.Print && IPAddress.TryParse(spec.TargetHost, out var ip) && ip.AddressFamily == AddressFamily.InterNetwork ? Ip.ToUInt(ip) : 0;
            var service = new TunnelService(
                spec.Print ? TunnelMessages.ServiceIpp : TunnelMessages.ServiceGeneric,
                (uint)i + 1,
                (uint)group + 1,
                spec.GuestPort,
                spec.Name,
                $"{spec.TargetHost}:{spec.TargetPort}",
                printer);
            Send(TunnelMessages.ServiceAdd, TunnelMessages.BuildServiceAdd(service));
        }
    }

    private void OnIpMap(ReadOnlySpan<byte> body)
    {
        if (body.Length != 10 || BinaryPrimitives.ReadUInt16LittleEndian(body[4..]) != TunnelMessages.IpTypeIpv4)
        {
            ThrowHelper.Protocol($"SERVICE_IP_MAP of {body.Length} bytes or not IPv4");
        }

        var id = BinaryPrimitives.ReadUInt32LittleEndian(body);
        if (id == 0 || id > _services.Count)
        {
            ThrowHelper.Protocol($"SERVICE_IP_MAP for service {id}, which was never added");
        }

        _published(_services[(int)id - 1], new IPAddress(body.Slice(6, 4)));
    }

    private Slot SlotFor(ushort id, string message)
    {
        if (id >= _slots.Length)
        {
            ThrowHelper.Protocol($"{message} for connection id {id} (at most {_slots.Length - 1})");
        }

        return _slots[id] ?? throw new SpiceProtocolException($"{message} for connection id {id}, which is not open");
    }

    private void OnOpen(ushort id, uint serviceId, uint tokens)
    {
        lock (_gate)
        {
            if (id >= _slots.Length || _slots[id] is not null)
            {
                ThrowHelper.Protocol($"SOCKET_OPEN for connection id {id}, out of range or in use");
            }

            if (serviceId == 0 || serviceId > _services.Count)
            {
                Send(TunnelMessages.SocketOpenNack, TunnelMessages.BuildId(id));
                return;
            }

            var slot = new Slot(id, _services[(int)serviceId - 1], Math.Min(tokens, 1024u)) { Owner = this };
            _slots[id] = slot;
            _socketTasks.RemoveAll(static t => t.IsCompleted);
            slot.Run = RunSocketAsync(slot);
            _socketTasks.Add(slot.Run);
        }
    }

    private void OnFin(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_FIN");
            if (slot.State is SlotState.ClosedSent or SlotState.ServerClosed)
            {
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnFin())
            {
                ThrowHelper.Protocol($"SOCKET_FIN for connection id {id} in state {slot.State} (or a second one)");
            }
        }
    }

    private void OnClose(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_CLOSE");
            switch (slot.State)
            {
                case SlotState.ClosedSent:
                    // Crossed our CLOSED (protocol.md §6.6): acknowledge and forget.
                    _slots[id] = null;
                    Send(TunnelMessages.ClientSocketClosedAck, TunnelMessages.BuildId(id));
                    return;
                case SlotState.Open:
                    slot.State = SlotState.ServerClosed;
                    slot.Relay!.OnPeerClosed();
                    return;
                default:
                    ThrowHelper.Protocol($"SOCKET_CLOSE for connection id {id} in state {slot.State}");
                    return;
            }
        }
    }

    private void OnData(ushort id, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_DATA");
            if (slot.State is SlotState.ClosedSent or SlotState.ServerClosed)
            {
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnData(data))
            {
                ThrowHelper.Protocol($"SOCKET_DATA for connection id {id} in state {slot.State}: no tokens left, or after its FIN");
            }
        }
    }

    private void OnClosedAck(ushort id)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_CLOSED_ACK");
            if (slot.State != SlotState.ClosedSent)
            {
                ThrowHelper.Protocol($"SOCKET_CLOSED_ACK for connection id {id} in state {slot.State}");
            }

            _slots[id] = null;
        }
    }

    private void OnToken(ushort id, uint count)
    {
        lock (_gate)
        {
            var slot = SlotFor(id, "SOCKET_TOKEN");
            if (slot.State is SlotState.ClosedSent or SlotState.ServerClosed)
            {
                return;
            }

            if (slot.State != SlotState.Open || !slot.Relay!.OnTokens(count))
            {
                ThrowHelper.Protocol($"SOCKET_TOKEN of {count} for connection id {id} in state {slot.State}: more than the server granted");
            }
        }
    }

    private async Task RunSocketAsync(Slot slot)
    {
        // Off the receive loop's lock before connecting.
        await Task.Yield();
        var target = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await target.ConnectAsync(slot.Service.TargetHost, slot.Service.TargetPort, slot.Connect.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (IoErrors.IsSocketEnd(ex))
        {
            target.Dispose();
            TunnelLog.ClientSocket(_logger, slot.Id, $"connect to {slot.Service.TargetHost}:{slot.Service.TargetPort} failed: {ex.Message}");
            lock (_gate)
            {
                if (_slots.Length <= slot.Id || _slots[slot.Id] != slot)
                {
                    return;
                }

                // The server keeps the id until the NACK arrives, so it is free for no one else meanwhile.
                _slots[slot.Id] = null;
            }

            await SendForSocketAsync(TunnelMessages.SocketOpenNack, TunnelMessages.BuildId(slot.Id)).ConfigureAwait(false);
            return;
        }

        lock (_gate)
        {
            if (_lifetime.IsAborted || _slots.Length <= slot.Id || _slots[slot.Id] != slot)
            {
                target.Dispose();
                return;
            }

            slot.Relay = new TunnelRelay(slot.Id, target, _connection, TunnelRelay.ClientIds, _maxData, Window, slot.ServerGrant);
            slot.State = SlotState.Open;
            if (_flushed)
            {
                // Opened while a migration holds the channel: it starts paused, like the others.
                _ = slot.Relay.PauseAsync(Timeout.InfiniteTimeSpan);
            }
        }

        // Queued behind the other sockets' data when they fill the queue; this socket's own data
        // starts after it. The server sends nothing for the id before the OPEN_ACK.
        if (!await SendForSocketAsync(TunnelMessages.SocketOpenAck, TunnelMessages.BuildIdTokens(slot.Id, Window)).ConfigureAwait(false))
        {
            // The channel ended meanwhile: the relay never runs; this closes the target.
            slot.Relay.Abort();
            return;
        }

        TunnelLog.ClientSocket(_logger, slot.Id, $"open to {slot.Service.TargetHost}:{slot.Service.TargetPort}");
        await slot.Relay.RunAsync().ConfigureAwait(false);
        slot.Relay.Close();

        // The channel that owns the slot now: a migration may have moved it to the target's.
        TunnelClientChannel owner;
        ushort message;
        while (true)
        {
            owner = slot.Owner!;
            lock (owner._gate)
            {
                if (slot.Owner != owner)
                {
                    continue;
                }

                if (owner._slots.Length <= slot.Id || owner._slots[slot.Id] != slot)
                {
                    return;
                }

                if (slot.State == SlotState.ServerClosed)
                {
                    owner._slots[slot.Id] = null;
                    message = TunnelMessages.ClientSocketClosedAck;
                }
                else
                {
                    slot.State = SlotState.ClosedSent;
                    message = TunnelMessages.SocketClosed;
                }

                break;
            }
        }

        await owner.SendForSocketAsync(message, TunnelMessages.BuildId(slot.Id)).ConfigureAwait(false);
    }

    /// <summary>
    /// Queues a socket's message, waiting for room, or holds it while the channel is flushed for a
    /// migration; false when the channel has ended.
    /// </summary>
    private async Task<bool> SendForSocketAsync(ushort type, byte[] body)
    {
        lock (_gate)
        {
            if (_flushed)
            {
                _held.Add((type, body));
                return true;
            }
        }

        try
        {
            await _connection.SendAsync(type, body, _lifetime.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ChannelLifetime.IsAbortEcho(ex))
        {
            return false;
        }
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "A CancellationTokenSource without a timer owns no handle.")]
    private sealed class Slot(ushort id, TunnelServiceSpec service, uint serverGrant)
    {
        public ushort Id { get; } = id;

        public TunnelServiceSpec Service { get; } = service;

        public uint ServerGrant { get; } = serverGrant;

        public SlotState State { get; set; }

        public TunnelRelay? Relay { get; set; }

        public CancellationTokenSource Connect { get; } = new();

        /// <summary>The channel the slot belongs to (a migration moves it to the target's).</summary>
        public TunnelClientChannel? Owner { get; set; }

        /// <summary>The socket's task (connect, relay, close).</summary>
        public Task? Run { get; set; }
    }
}
