using System.Net;
using System.Net.Sockets;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Stack;

/// <summary>
/// The gateway's part in a migration (docs/migration.md, "Gateway flows"): freezing (no guest
/// frame handled, no timer, no socket loop), the export of its flows on the source and their
/// import on the target, and the hold of a target's gateway until the state has arrived.
/// </summary>
/// <remarks>
/// Freezing sets <see cref="Frozen"/> under the lock: the poller's thread then leaves the guest's
/// frames queued, as does the queuing thread that would handle them while the poller sleeps
/// (<see cref="GatewayEnd"/>), the poller's tick (<see cref="OnTimer"/>) does nothing, and a TCP connection only remembers its host socket's readiness (it reads and
/// writes under the same lock, so none is half way). It also cancels <see cref="LoopToken"/>,
/// which the datagram flows' socket loops wait with, and waits until those have all returned
/// (<see cref="LoopsStarted"/> / <see cref="LoopEnded"/> count them under the lock). Then nothing
/// changes any more: the dump is consistent. A host socket that is dumped leaves the poller
/// before it goes into repair mode, and comes back only if the migration fails. A gateway that is
/// held (a migration target waiting for its state) starts frozen.
/// </remarks>
internal sealed partial class Gateway
{
    private bool _frozen;
    private int _runningLoops;
    private TaskCompletionSource? _quiet;
    private TaskCompletionSource _runnable = Completed();
    private CancellationTokenSource? _loopCancel;
    private List<TcpConnection> _imported = [];
    private List<DatagramFlow> _importedDatagrams = [];

    /// <summary>True while a migration holds the gateway still (or a target waits for its state). Read under <see cref="Sync"/>.</summary>
    public bool Frozen => _frozen;

    /// <summary><see cref="Frozen"/> without the lock, for the poller deciding whether it may sleep (a thaw wakes it).</summary>
    public bool FrozenNow => Volatile.Read(ref _frozen);

    /// <summary>True once the gateway's flows went to a migration target: it stays frozen.</summary>
    public bool HandedOver { get; private set; }

    /// <summary>What host socket loops wait with: cancelled when the gateway stops or freezes.</summary>
    public CancellationToken LoopToken => _loopCancel?.Token ?? Stopping;

    /// <summary>Completes when the gateway may handle guest frames (not frozen). Read under <see cref="Sync"/>.</summary>
    public Task Runnable => _runnable.Task;

    /// <summary>Closes the host forward listeners when the flows are handed over (set by <see cref="GatewayEnd"/>).</summary>
    public Action? CloseForwards { get; set; }

    /// <summary>Host socket loops just started. Caller holds <see cref="Sync"/>.</summary>
    public void LoopsStarted(int count) => _runningLoops += count;

    /// <summary>A host socket loop returned. Caller holds <see cref="Sync"/>.</summary>
    public void LoopEnded()
    {
        if (--_runningLoops == 0)
        {
            _quiet?.TrySetResult();
        }
    }

    /// <summary>A migration target's gateway: frozen from the start, until its state is adopted (<see cref="Thaw"/>).</summary>
    public void Hold()
    {
        lock (Sync)
        {
            _frozen = true;
            _runnable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    /// <summary>Stops handling guest frames, timers and socket loops, and waits until every loop has returned.</summary>
    public async Task FreezeAsync(CancellationToken cancellationToken)
    {
        CancellationTokenSource? cancel;
        Task quiet;
        lock (Sync)
        {
            if (!_frozen)
            {
                _frozen = true;
                _runnable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _quiet = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (_runningLoops == 0)
                {
                    _quiet.TrySetResult();
                }
            }

            cancel = _loopCancel;
            quiet = _quiet?.Task ?? Task.CompletedTask;
        }

        // Outside the lock: cancellation runs the loops' continuations, which take it.
        if (cancel is not null)
        {
            await cancel.CancelAsync().ConfigureAwait(false);
        }

        await quiet.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Runs again after <see cref="FreezeAsync"/> or <see cref="Hold"/>: loops, timers and guest frames. No effect after a handover.</summary>
    public void Thaw()
    {
        TaskCompletionSource runnable;
        CancellationTokenSource? old;
        lock (Sync)
        {
            if (!_frozen || HandedOver)
            {
                return;
            }

            _frozen = false;
            _quiet = null;
            old = _loopCancel;
            _loopCancel = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
            runnable = _runnable;
            Tcp.ResumeAll();
            Udp.ResumeAll();
            Icmp.ResumeAll();
        }

        old?.Dispose();
        runnable.TrySetResult();
        _flushSignal.Set();

        // The poller's thread parked while frozen with guest frames queued.
        _poller?.Wake();
    }

    /// <summary>
    /// Source, frozen: every flow, with the host sockets that move dumped under the network lock.
    /// Flows over <paramref name="budget"/> bytes of state, and those that cannot move, are to be
    /// reset. Their sockets stay as they are until <see cref="ReleaseFlows"/> or <see cref="ThawExport"/>.
    /// </summary>
    public GatewayExport ExportFlows(NetworkLock networkLock, long budget, Func<TcpConnection, FlowResetReason?>? virtualMoves)
    {
        lock (Sync)
        {
            var export = new GatewayExport { GuestMac = _guestMac.ToUInt64(), GuestIp = GuestIp, TcpForwardPort = Tcp.NextForwardPort, UdpForwardPort = Udp.NextForwardPort };
            var now = NowMs;
            var needHost = new List<(TcpConnection Connection, Socket Socket)>();
            long size = 0;
            foreach (var connection in Tcp.Connections)
            {
                if (connection.MigrationBlocker is { } blocker)
                {
                    export.Resetting.Add(new(connection, connection.ResetState(blocker), null));
                }
                else if (connection.Origin == TcpFlowOrigin.Virtual && (virtualMoves is null ? FlowResetReason.Tunnel : virtualMoves(connection)) is { } virtualReason)
                {
                    export.Resetting.Add(new(connection, connection.ResetState(virtualReason), null));
                }
                else if (connection.MovableHost is { } socket)
                {
                    // Out of the poller before repair mode: a read or write there would take bytes from the queues.
                    connection.StopWatching();
                    needHost.Add((connection, socket));
                }
                else
                {
                    Add(connection.Export(null, now), connection, null);
                }
            }

            if (needHost.Count > 0)
            {
                var refusal = TcpRepair.IsPermitted() ? (FlowResetReason?)null : FlowResetReason.NoRepair;
                if (refusal is null)
                {
                    try
                    {
                        // A socket closed both ways (CLOSE after our FIN and the peer's) has no peer
                        // address any more and needs no lock: its peer's TIME-WAIT answers for it.
                        var flows = new List<(IPEndPoint, IPEndPoint)>(needHost.Count);
                        foreach (var (_, socket) in needHost)
                        {
                            if (TcpRepair.KernelState(socket) != TcpKernelState.Close)
                            {
                                flows.Add(TcpRepair.Addresses(socket));
                            }
                        }

                        if (flows.Count > 0)
                        {
                            networkLock.Lock(flows);
                            export.Locked = true;
                        }
                    }
                    catch (Exception ex) when (ex is NetworkLockException or TcpRepairException or ObjectDisposedException)
                    {
                        StackLog.NoNetworkLock(Logger, ex.Message);
                        refusal = FlowResetReason.NoLock;
                    }
                }

                foreach (var (connection, socket) in needHost)
                {
                    if (refusal is { } reason)
                    {
                        export.Resetting.Add(new(connection, connection.ResetState(reason), null));
                        continue;
                    }

                    try
                    {
                        Add(connection.Export(TcpRepair.Dump(socket, connection.HostShutdown), now), connection, socket);
                    }
                    catch (TcpRepairException ex)
                    {
                        StackLog.FlowNotDumped(Logger, connection.Key.ToString(), ex.Message);
                        export.Resetting.Add(new(connection, connection.ResetState(ReasonOf(ex.Failure)), ex.Failure == TcpRepairFailure.NotPermitted ? null : socket));
                    }
                }
            }

            Udp.Export(export.Datagrams, now);
            Icmp.Export(export.Datagrams, now);
            return export;

            void Add(Migration.TcpFlowState state, TcpConnection connection, Socket? socket)
            {
                if (size + state.Size > budget)
                {
                    export.Resetting.Add(new(connection, connection.ResetState(FlowResetReason.TooLarge), socket));
                    return;
                }

                size += state.Size;
                export.Moving.Add(new(connection, state, socket));
            }
        }
    }

    /// <summary>
    /// Source: the target prepared the stream. Moving connections it did not refuse are handed over
    /// (their host sockets close in repair mode, silently); the rest, and those that never could
    /// move, get a RST towards their host peers. Datagram flows close and the forward listeners
    /// close, so the target can bind them. The gateway stays frozen.
    /// </summary>
    public void ReleaseFlows(GatewayExport export, IReadOnlyDictionary<int, FlowResetReason>? refused)
    {
        lock (Sync)
        {
            HandedOver = true;
            for (var i = 0; i < export.Moving.Count; i++)
            {
                var (connection, _, socket) = export.Moving[i];
                FlowResetReason? reason = refused is null ? FlowResetReason.TargetRefused : refused.TryGetValue(i, out var r) ? r : null;
                if (reason is { } why)
                {
                    Counters.MigrationReset(why);
                    connection.ResetHost(inRepair: socket is not null);
                }
                else
                {
                    Counters.FlowMovedOut();
                    connection.HandOver();
                }
            }

            foreach (var (connection, reset, socket) in export.Resetting)
            {
                Counters.MigrationReset(reset.Reason);
                connection.ResetHost(inRepair: socket is not null);
            }

            Udp.HandOver();
            Icmp.HandOver();
        }

        CloseForwards?.Invoke();
    }

    /// <summary>Source: the migration failed before the release: dumped sockets leave repair mode, the lock goes, everything runs again.</summary>
    public void ThawExport(GatewayExport export, NetworkLock networkLock)
    {
        lock (Sync)
        {
            foreach (var (connection, _, socket) in export.Moving)
            {
                if (socket is not null)
                {
                    TcpRepair.Resume(socket);
                }

                connection.WatchAgain();
            }

            foreach (var (connection, _, socket) in export.Resetting)
            {
                if (socket is not null)
                {
                    TcpRepair.Resume(socket);
                }

                connection.WatchAgain();
            }
        }

        if (export.Locked)
        {
            UnlockQuietly(networkLock);
        }

        Thaw();
    }

    /// <summary>
    /// Source, frozen: the far end of a connection to a virtual service (a socket pair's) when the
    /// connection is established and would move, for the tunnel to read what is queued in it. Caller must not hold the lock.
    /// </summary>
    public Socket? VirtualHost(FlowKey key)
    {
        lock (Sync)
        {
            return Tcp.Find(key) is { Origin: TcpFlowOrigin.Virtual, MigrationBlocker: null } connection ? connection.VirtualSocket : null;
        }
    }

    /// <summary>Lifts the network lock; a failure is logged (the lock's sets are flushed by the next migration or go with the table).</summary>
    public void UnlockQuietly(NetworkLock networkLock)
    {
        try
        {
            networkLock.Unlock();
        }
        catch (NetworkLockException ex)
        {
            StackLog.NoNetworkLock(Logger, ex.Message);
        }
    }

    /// <summary>
    /// Target, held: adopts the flows of <paramref name="plan"/>. Connections it refused, those
    /// the source reset and those whose socket cannot be restored get a RST towards the guest;
    /// the others enter the table with their sockets still in repair mode, until <see cref="ActivateImported"/>.
    /// </summary>
    public void ImportFlows(GatewayFlowPlan plan, IReadOnlyDictionary<int, FlowResetReason> refused, Func<FlowKey, Socket?>? virtualFar = null)
    {
        lock (Sync)
        {
            if (plan.GuestMac != 0)
            {
                _guestMac = new MacAddress(plan.GuestMac);
            }

            if (plan.GuestIp != 0)
            {
                SetGuestIp(plan.GuestIp);
            }

            Tcp.NextForwardPort = plan.TcpForwardPort;
            Udp.NextForwardPort = plan.UdpForwardPort;
            var imported = new List<TcpConnection>(plan.Tcp.Count);
            for (var i = 0; i < plan.Tcp.Count; i++)
            {
                var state = plan.Tcp[i];
                if (refused.TryGetValue(i, out var reason))
                {
                    ResetGuest(state.Key, state.SndNxt, state.RcvNxt, reason);
                    continue;
                }

                Socket? socket = null;
                if (state.Origin == TcpFlowOrigin.Virtual)
                {
                    // The tunnel's new socket pair (docs/migration.md, "Tunnel sockets").
                    socket = virtualFar?.Invoke(state.Key);
                    if (socket is null)
                    {
                        ResetGuest(state.Key, state.SndNxt, state.RcvNxt, FlowResetReason.Tunnel);
                        continue;
                    }
                }
                else if (state.Host is { } host)
                {
                    try
                    {
                        socket = TcpRepair.Restore(host);
                    }
                    catch (TcpRepairException ex)
                    {
                        StackLog.FlowNotRestored(Logger, state.Key.ToString(), ex.Message);
                        ResetGuest(state.Key, state.SndNxt, state.RcvNxt, ex.Failure switch
                        {
                            TcpRepairFailure.NotPermitted => FlowResetReason.TargetNoRepair,
                            TcpRepairFailure.AddressUnavailable => FlowResetReason.AddressUnavailable,
                            _ => FlowResetReason.RestoreFailed,
                        });
                        continue;
                    }
                }

                var connection = TcpConnection.Import(this, Tcp, state, socket);
                if (!Tcp.TryAdd(connection))
                {
                    socket?.Dispose();
                    ResetGuest(state.Key, state.SndNxt, state.RcvNxt, FlowResetReason.TableFull);
                    continue;
                }

                Counters.FlowMovedIn();
                imported.Add(connection);
            }

            foreach (var reset in plan.Resets)
            {
                ResetGuest(reset.Key, reset.Seq, reset.Ack, reset.Reason);
            }

            _importedDatagrams = [.. Udp.Import(plan.Datagrams), .. Icmp.Import(plan.Datagrams)];
            _imported = imported;
        }
    }

    /// <summary>Target: the source has let go of the imported flows: their sockets leave repair mode and the gateway runs.</summary>
    public void ActivateImported()
    {
        lock (Sync)
        {
            foreach (var connection in _imported)
            {
                connection.ActivateMigrated();
            }

            _imported = [];
            _importedDatagrams = [];
        }

        Thaw();
    }

    /// <summary>A RST to the guest for a connection that does not continue (counted by reason).</summary>
    private void ResetGuest(FlowKey key, uint seq, uint ack, FlowResetReason reason)
    {
        Counters.MigrationReset(reason);
        StackLog.FlowReset(Logger, key.ToString(), StackCounters.Name(reason));
        Tcp.SendReset(key, seq, ack, TcpFlags.Rst | TcpFlags.Ack);
    }

    private static FlowResetReason ReasonOf(TcpRepairFailure failure) => failure switch
    {
        TcpRepairFailure.NotPermitted => FlowResetReason.NoRepair,
        TcpRepairFailure.TooLarge => FlowResetReason.TooLarge,
        _ => FlowResetReason.HostState,
    };

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource();
        done.SetResult();
        return done;
    }
}

/// <summary>What <see cref="Gateway.ExportFlows"/> took from a frozen gateway, kept until the migration ends.</summary>
internal sealed class GatewayExport
{
    public ulong GuestMac { get; init; }

    public uint GuestIp { get; init; }

    public ushort TcpForwardPort { get; init; }

    public ushort UdpForwardPort { get; init; }

    /// <summary>True when the network lock was taken for the dumped sockets.</summary>
    public bool Locked { get; set; }

    /// <summary>Connections that move, in stream order (refusals name them by index); the socket when it was dumped.</summary>
    public List<(TcpConnection Connection, Migration.TcpFlowState State, Socket? Socket)> Moving { get; } = [];

    /// <summary>Connections that cannot move; the socket when it is in repair mode.</summary>
    public List<(TcpConnection Connection, ResetFlowState Reset, Socket? Socket)> Resetting { get; } = [];

    /// <summary>UDP flows and relayed pings.</summary>
    public List<DatagramFlowState> Datagrams { get; } = [];
}

/// <summary>A gateway's flows as a target parsed them, before they are applied.</summary>
internal sealed class GatewayFlowPlan
{
    public ulong GuestMac { get; init; }

    public uint GuestIp { get; init; }

    public ushort TcpForwardPort { get; init; }

    public ushort UdpForwardPort { get; init; }

    public List<Migration.TcpFlowState> Tcp { get; } = [];

    public List<ResetFlowState> Resets { get; } = [];

    public List<DatagramFlowState> Datagrams { get; } = [];
}
