using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using NetWire.Stack.Nat;

namespace NetWire.Stack;

/// <summary>
/// The user-mode gateway as a wire end: its "device" is the stack. Frames sent to this end
/// (the guest's frames) are handled by <see cref="Gateway"/>; frames the stack produces go to the
/// receiver while it can take them. Needs no root and no TAP.
/// </summary>
/// <remarks>
/// The guest's frames are handled on the gateway's poller thread (<see cref="HostPoller"/>), a
/// batch at a time under the gateway lock, then the ACKs owed; the queue's writer wakes that
/// thread directly, and the 10 ms tick (retransmissions, TIME-WAIT, idle flows, read against the
/// injected <see cref="TimeProvider"/>) runs there too. RunAsync runs the flush loop for
/// connections blocked by a full guest end and the host-forward listeners.
/// Host forwards live in a table with ids: those of the options open when RunAsync starts (a port
/// that cannot be bound fails the start; a held migration target's once it runs, after the
/// source has let them go, and a handover closes them all), and <see cref="AddForward"/> and
/// <see cref="RemoveForward"/> change the table while the gateway runs (the QMP <c>hostfwd-*</c>
/// commands, the slirp4netns API socket). Removing a forward closes its listener; connections
/// it already accepted go on.
/// As an <see cref="IInputLoop"/> the gateway's poller reads another end's descriptor itself (the
/// namespace's TAP in <c>netwire run</c>): the guest's frames then arrive on the poller's thread.
/// </remarks>
public sealed class GatewayEnd : WireEnd, HostPoller.IGuestWork, IInputLoop
{
    /// <summary>Most batches the poller's thread handles before it looks at the host sockets again.</summary>
    private const int BatchesPerTurn = 4;

    private const int BatchFrames = 64;
    private static readonly TimeSpan s_tick = TimeSpan.FromMilliseconds(10);

    private readonly Gateway _gateway;
    private readonly GatewayMetrics _metrics;
    private readonly ILogger _logger;
    /// <summary>Open forwards by id. Guarded by itself, not the gateway lock (binding is a system call).</summary>
    private readonly SortedDictionary<int, OpenForward> _forwards = [];
    private int _nextForwardId;

    /// <summary>Stops every forward loop; null until RunAsync starts and after it ends. Guarded by <see cref="_forwards"/>.</summary>
    private CancellationToken? _forwardStop;

    /// <summary>True once the options' forwards are open (a held target's only when it runs). Guarded by <see cref="_forwards"/>.</summary>
    private bool _optionForwardsOpen;

    /// <summary>Forwards a migration source had added while it ran, opened here with the options' ones. Guarded by <see cref="_forwards"/>.</summary>
    private List<HostForward> _adoptedForwards = [];

    /// <summary>Guards <see cref="_inputPoller"/> and <see cref="_pendingInput"/>.</summary>
    private readonly Lock _inputGate = new();

    /// <summary>The running poller, while RunAsync runs. Guarded by <see cref="_inputGate"/>.</summary>
    private HostPoller? _inputPoller;

    /// <summary>An input watch asked for before the poller ran. Guarded by <see cref="_inputGate"/>.</summary>
    private PendingInput? _pendingInput;

    /// <summary>Creates the gateway end; throws <see cref="FormatException"/> when the options contradict each other.</summary>
    public GatewayEnd(string name, GatewayOptions options, FramePool pool, int queueCapacity, TimeProvider time, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _gateway = new Gateway(options, pool, time, logger);
        _logger = logger;
        _metrics = new GatewayMetrics(this);
    }

    /// <inheritdoc/>
    public override string Description => _gateway.Options.Ipv6Enabled
        ? $"gateway {_gateway.Options.Network} via {_gateway.Options.GatewayIp}, {_gateway.Options.Network6} via {_gateway.Options.GatewayIp6}"
        : $"gateway {_gateway.Options.Network} via {_gateway.Options.GatewayIp}";

    /// <inheritdoc/>
    public override IPAddress? GuestIp => _gateway.GuestAddress;

    /// <summary>
    /// The stack terminates TCP and UDP itself, so it takes every offload: a checksum left undone
    /// (or already verified) need not be checked, and a TCP segment of up to 64 KiB is one segment
    /// for the TCP endpoint.
    /// </summary>
    public override WireOffloads AcceptedOffloads => WireOffloads.All;

    /// <summary>
    /// False: producers wait for room through <see cref="WireEnd.WaitCanSendPacketAsync"/>, so a
    /// stream guest's upload keeps its async receive loop. The dedicated receive thread that a
    /// bridge uses was measured towards the gateway (tools/bench/guest-path.sh): it halves the
    /// gateway's CPU per byte towards the guest but slows an emulated guest's uploads, which then
    /// send smaller segments against an ACK per burst (docs/performance.md, "Reading a stream
    /// guest off the thread pool: tried, not on").
    /// </summary>
    public override bool HasRoomSignal => false;

    /// <inheritdoc/>
    public override IReadOnlyList<IPAddress> GuestIpv6 => _gateway.GuestIpv6.ToList();

    /// <summary>The gateway's drop reasons and flow totals.</summary>
    public StackCounters StackCounters => _gateway.Counters;

    /// <summary>The gateway itself (its DHCP leases travel in the migration state).</summary>
    internal Gateway Gateway => _gateway;

    /// <summary>TCP connections in the table now (including TIME-WAIT).</summary>
    public int TcpConnections
    {
        get
        {
            lock (_gateway.Sync)
            {
                return _gateway.Tcp.Count;
            }
        }
    }

    /// <summary>
    /// Makes this gateway a migration target's: it takes no guest frame, opens no host forward and
    /// runs no timer until <see cref="ReleaseHold"/> (the state stream has been adopted). Call before RunAsync.
    /// </summary>
    public void Hold() => _gateway.Hold();

    /// <summary>Runs a held gateway (no effect otherwise, or after its flows moved away).</summary>
    public void ReleaseHold() => _gateway.Thaw();

    /// <summary>
    /// Tells the gateway the guest's address (and IPv6 address, when it has one) and MAC before the
    /// guest has sent a frame (a guest configured statically, as <c>netwire run</c> does), so host
    /// forwards can reach it at once.
    /// </summary>
    public void AssumeGuest(IPAddress address, IPAddress? address6, ReadOnlySpan<byte> mac)
    {
        lock (_gateway.Sync)
        {
            _gateway.SetGuestMac(MacAddress.Read(mac));
            _gateway.SetGuestIp(Ip.ToUInt(address));
            if (address6 is not null)
            {
                _gateway.GuestIpv6.SetFirst(IpAddr.FromAddress(address6));
            }
        }
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        _metrics.Dispose();
        return default;
    }

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _gateway.Attach(receiver, Counters, stop.Token);
        _gateway.CloseForwards = CloseForwards;
        lock (_forwards)
        {
            _forwardStop = stop.Token;
        }

        Task runnable;
        lock (_gateway.Sync)
        {
            runnable = _gateway.Runnable;
        }

        if (runnable.IsCompleted)
        {
            OpenOptionForwards();
        }

        _gateway.Poller.SetTick(_gateway.OnTimer, s_tick);
        Outbound.SetReaderSignal(OnFramesWhilePollerParked);
        _gateway.Poller.SetGuestWork(this);
        lock (_inputGate)
        {
            _inputPoller = _gateway.Poller;
            _pendingInput?.Start(_inputPoller);
        }

        var tasks = new List<Task> { Task.Delay(Timeout.Infinite, stop.Token), _gateway.FlushLoopAsync(stop.Token) };
        if (!runnable.IsCompleted)
        {
            tasks.Add(OpenForwardsWhenRunnableAsync(runnable, stop.Token));
        }

        try
        {
            await Task.WhenAny(tasks).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            CloseForwards();
            lock (_inputGate)
            {
                _inputPoller = null;
            }

            lock (_gateway.Sync)
            {
                _gateway.Shutdown();
            }
        }
    }

    /// <inheritdoc/>
    public IInputWatch WatchInput(int fd, IInputSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        lock (_inputGate)
        {
            if (_pendingInput is not null)
            {
                throw new InvalidOperationException("the gateway watches an input descriptor already");
            }

            var pending = new PendingInput(this, fd, source);
            if (_inputPoller is { } poller)
            {
                pending.Start(poller);
            }

            _pendingInput = pending;
            return pending;
        }
    }

    /// <summary>Opens the forwards of the options; one that cannot be bound closes them all and fails.</summary>
    private void OpenOptionForwards()
    {
        try
        {
            foreach (var forward in _gateway.Options.Forwards)
            {
                Open(forward, fromOptions: true);
            }
        }
        catch
        {
            CloseForwards();
            throw;
        }

        List<HostForward> adopted;
        lock (_forwards)
        {
            _optionForwardsOpen = true;
            adopted = _adoptedForwards;
            _adoptedForwards = [];
        }

        OpenAdopted(adopted);
    }

    /// <summary>
    /// The forwards a migration source had added while it ran (the QMP <c>hostfwd-add</c>), from
    /// the state stream: opened with the options' forwards once this gateway runs (the source has
    /// let their ports go by then), or at once when it runs already. A forward this appliance has
    /// open already (its own options name it) is left as it is; one whose port cannot be bound
    /// here is logged and left out, and the migration goes on.
    /// </summary>
    public void AdoptForwards(IReadOnlyList<HostForward> forwards)
    {
        ArgumentNullException.ThrowIfNull(forwards);
        lock (_forwards)
        {
            if (!_optionForwardsOpen)
            {
                _adoptedForwards = [.. forwards];
                return;
            }
        }

        OpenAdopted(forwards);
    }

    /// <summary>The forwards added while the gateway ran (not those of its options), in id order: what a migration carries.</summary>
    public IReadOnlyList<HostForward> AddedForwards
    {
        get
        {
            lock (_forwards)
            {
                return [.. _forwards.Values.Where(open => !open.FromOptions).Select(open => open.Forward)];
            }
        }
    }

    private void OpenAdopted(IReadOnlyList<HostForward> forwards)
    {
        foreach (var forward in forwards)
        {
            if (Forwards.Any(open => open.Forward.Transport == forward.Transport && open.Forward.Listen.Equals(forward.Listen) && open.Forward.GuestPort == forward.GuestPort))
            {
                continue;
            }

            try
            {
                Open(forward, fromOptions: false);
            }
            catch (WireSetupException ex)
            {
                StackLog.ForwardNotAdopted(_logger, forward.ToString(), ex.Message);
            }
        }
    }

    /// <summary>
    /// A held migration target opens the forwards of the options once it runs: the source has let
    /// them go by then. Then it waits, like the gateway, until stopped.
    /// </summary>
    private async Task OpenForwardsWhenRunnableAsync(Task runnable, CancellationToken cancellationToken)
    {
        await runnable.WaitAsync(cancellationToken).ConfigureAwait(false);
        OpenOptionForwards();
        await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The open host forwards by id, in id order.</summary>
    public IReadOnlyList<(int Id, HostForward Forward)> Forwards
    {
        get
        {
            lock (_forwards)
            {
                return [.. _forwards.Select(entry => (entry.Key, entry.Value.Forward))];
            }
        }
    }

    /// <summary>True while RunAsync runs, from the moment <see cref="AddForward"/> takes forwards.</summary>
    public bool IsRunning
    {
        get
        {
            lock (_forwards)
            {
                return _forwardStop is { IsCancellationRequested: false };
            }
        }
    }

    /// <summary>
    /// Opens a host forward while the gateway runs and returns its id (ids count up from 1 and are
    /// not reused). Throws <see cref="WireSetupException"/> with the reason when the gateway is not
    /// running, the same forward is open already, an IPv6 forward meets a gateway without IPv6, or
    /// the address cannot be bound (in use, a privileged port without the right to bind it).
    /// </summary>
    public int AddForward(HostForward forward)
    {
        ArgumentNullException.ThrowIfNull(forward);
        return Open(forward, fromOptions: false);
    }

    private int Open(HostForward forward, bool fromOptions)
    {
        var udp = forward.Transport == Transport.Udp;
        var family = forward.Listen.AddressFamily;
        if (family == AddressFamily.InterNetworkV6 && !_gateway.Options.Ipv6Enabled)
        {
            throw new WireSetupException($"forward {forward}: an IPv6 forward needs IPv6 on the gateway (drop --no-ipv6)");
        }

        lock (_forwards)
        {
            if (_forwardStop is not { } stop || stop.IsCancellationRequested)
            {
                throw new WireSetupException($"forward {forward}: the gateway is not running");
            }

            // Linux lets two UDP sockets share a port with SO_REUSEADDR, so a duplicate is caught here.
            if (_forwards.Values.Any(open => open.Forward.Transport == forward.Transport && open.Forward.Listen.Equals(forward.Listen)))
            {
                throw new WireSetupException($"forward {forward}: that host address and port are forwarded already");
            }

            var socket = udp
                ? new Socket(family, SocketType.Dgram, ProtocolType.Udp)
                : new Socket(family, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (family == AddressFamily.InterNetworkV6)
                {
                    // [::] means IPv6 clients only; an IPv4 client reaches an IPv4 forward.
                    socket.DualMode = false;
                }

                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(forward.Listen);
                if (!udp)
                {
                    socket.Listen(128);
                }
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new WireSetupException($"cannot listen for forward {forward}: {ex.Message}", ex);
            }

            // Port 0 asked the kernel for one: the table holds the port it gave.
            forward = forward with { Listen = (IPEndPoint)socket.LocalEndPoint! };
            var id = ++_nextForwardId;
            var open = new OpenForward(forward, socket, CancellationTokenSource.CreateLinkedTokenSource(stop)) { FromOptions = fromOptions };
            _forwards.Add(id, open);
            open.Loop = udp ? UdpForwardLoopAsync(socket, forward, open.Stop.Token) : AcceptLoopAsync(socket, forward, open.Stop.Token);
            StackLog.Forwarding(_logger, forward.ToString());
            return id;
        }
    }

    /// <summary>Closes the forward <paramref name="id"/>; false when there is none.</summary>
    public bool RemoveForward(int id)
    {
        OpenForward? open;
        lock (_forwards)
        {
            if (!_forwards.Remove(id, out open))
            {
                return false;
            }
        }

        open.Close();
        StackLog.ForwardRemoved(_logger, open.Forward.ToString());
        return true;
    }

    private void CloseForwards()
    {
        List<OpenForward> open;
        lock (_forwards)
        {
            _forwardStop = null;
            _optionForwardsOpen = false;
            open = [.. _forwards.Values];
            _forwards.Clear();
        }

        foreach (var forward in open)
        {
            forward.Close();
        }
    }

    private async Task AcceptLoopAsync(Socket listener, HostForward forward, CancellationToken cancellationToken)
    {
        // Off the caller's thread: AddForward holds the table's lock.
        await Task.Yield();
        while (await ListenerAccept.NextAsync(listener, ex => StackLog.ForwardFailed(_logger, forward.ToString(), ex.Message), cancellationToken).ConfigureAwait(false) is { } accepted)
        {
            accepted.NoDelay = true;
            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    // A migration holds the gateway: the client's connection cannot start now.
                    _gateway.Counters.MigrationReset(Migration.FlowResetReason.Handshake);
                    accepted.LingerState = new LingerOption(true, 0);
                    accepted.Dispose();
                    continue;
                }

                _gateway.Tcp.OpenToGuest(accepted, forward.GuestPort, forward.Listen.AddressFamily == AddressFamily.InterNetworkV6);
            }
        }
    }

    private async Task UdpForwardLoopAsync(Socket listener, HostForward forward, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var buffer = new byte[65_535];
        EndPoint any = new IPEndPoint(listener.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (true)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await listener.ReceiveFromAsync(buffer, SocketFlags.None, any, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (NetWire.Core.Net.IoErrors.IsPortUnreachable(ex.SocketErrorCode))
            {
                // ICMP port unreachable for an earlier reply to a client that went away.
                continue;
            }
            catch (Exception ex) when (IoErrors.IsShutdown(ex, cancellationToken))
            {
                return;
            }
            catch (SocketException ex)
            {
                StackLog.ForwardFailed(_logger, forward.ToString(), ex.Message);
                return;
            }

            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    // Held still by a migration: lost, as on a busy link.
                    continue;
                }

                _gateway.Udp.FromForward(listener, (IPEndPoint)received.RemoteEndPoint, forward.GuestPort, buffer.AsSpan(0, received.ReceivedBytes));
            }
        }
    }

    /// <summary>The guest's frames, a batch at a time under the gateway lock, on the poller's thread.</summary>
    bool HostPoller.IGuestWork.Run() => RunGuestFrames();

    /// <summary>
    /// Handles up to <see cref="BatchesPerTurn"/> batches of guest frames; false when more are
    /// left. On the poller's thread, or on the queuing thread (<see cref="OnFramesWhilePollerParked"/>).
    /// </summary>
    private bool RunGuestFrames()
    {
        for (var batch = 0; batch < BatchesPerTurn; batch++)
        {
            if (Outbound.Count == 0)
            {
                return true;
            }

            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    // A frozen (or held) gateway leaves the guest's frames queued: the guest end stops reading.
                    return true;
                }

                for (var i = 0; i < BatchFrames && Outbound.TryRead(out var frame); i++)
                {
                    Counters.Transmitted(frame.Length);
                    _gateway.OnGuestFrame(frame);
                    frame.Dispose();
                }

                _gateway.EndOfBatch();
            }
        }

        return Outbound.Count == 0;
    }

    /// <summary>
    /// A guest frame was queued while the poller sleeps: the thread that queued it (the TAP's
    /// reader) handles what is queued itself, under the gateway lock, instead of waking the poller
    /// for it, and parks the queue again on the sleeping poller's behalf. A short connection's
    /// frames from the guest (SYN, ACKs, FIN) so cost no hand-off to a second thread; the poller
    /// still wakes for the host sockets. The poller is woken instead (it finds the frames on its
    /// next turn) when the lock is busy, when frames are left after a turn, when the queue
    /// completed or the gateway is stopping, and when the queuing thread already holds the lock.
    /// A frozen (or held) gateway is left alone as the poller leaves it: the frames stay queued,
    /// no host socket is touched, and the thaw wakes the poller for them (docs/migration.md).
    /// </summary>
    private void OnFramesWhilePollerParked()
    {
        var sync = _gateway.Sync;
        if (Outbound.IsCompleted || sync.IsHeldByCurrentThread || !sync.TryEnter())
        {
            _gateway.Poller.Wake();
            return;
        }

        bool frozen;
        bool done;
        try
        {
            // Read under the lock: a thaw after it clears the flag under the lock, then wakes the poller.
            frozen = _gateway.Frozen;

            // Stopping: RunAsync cancels before it shuts the gateway down, so no connection opens after.
            done = !frozen && !_gateway.Stopping.IsCancellationRequested && RunGuestFrames();
        }
        finally
        {
            sync.Exit();
        }

        if (frozen)
        {
            return;
        }

        if (!done || !Outbound.TryParkReader())
        {
            _gateway.Poller.Wake();
        }
    }

    /// <summary>An input watch, started on the poller once it runs. Guarded by the end's input gate.</summary>
    private sealed class PendingInput(GatewayEnd end, int fd, IInputSource source) : IInputWatch
    {
        private IInputWatch? _watch;
        private bool _disposed;

        public void Start(HostPoller poller)
        {
            if (!_disposed && _watch is null)
            {
                Volatile.Write(ref _watch, poller.WatchInput(fd, source));
            }
        }

        /// <summary>Without the gate: a source may resume from inside its read, under the poller's input lock.</summary>
        public void Resume() => Volatile.Read(ref _watch)?.Resume();

        public void Dispose()
        {
            lock (end._inputGate)
            {
                _disposed = true;
                _watch?.Dispose();
                Volatile.Write(ref _watch, null);
                if (end._pendingInput == this)
                {
                    end._pendingInput = null;
                }
            }
        }
    }

    /// <summary>An open forward: its listener and the stop of its loop.</summary>
    private sealed class OpenForward(HostForward forward, Socket listener, CancellationTokenSource stop)
    {
        public HostForward Forward { get; } = forward;

        /// <summary>Opened from the gateway's options (not added while it ran).</summary>
        public bool FromOptions { get; init; }

        public CancellationTokenSource Stop { get; } = stop;

        public Task? Loop { get; set; }

        public void Close()
        {
            Stop.Cancel();
            listener.Dispose();
            Stop.Dispose();
        }
    }

    /// <summary>
    /// The poller may sleep when no guest frame waits, or while a migration holds the gateway
    /// still (the frames wait for the thaw, which wakes it).
    /// </summary>
    bool HostPoller.IGuestWork.TryPark() => Outbound.TryParkReader() || _gateway.FrozenNow;

    /// <inheritdoc/>
    void HostPoller.IGuestWork.Unpark() => Outbound.UnparkReader();
}
