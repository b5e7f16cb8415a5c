using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Stack.Migration;

/// <summary>
/// State section <c>gateway.flows</c>: the gateway's live connections (docs/migration.md,
/// "Gateway flows"). TCP connections move with their guest-side endpoint and, through
/// TCP_REPAIR, their host socket; UDP flows and relayed pings move with their local ports;
/// connections that cannot move are listed so the target resets them towards the guest.
/// </summary>
/// <remarks>
/// Layout: u8 has gateway; then u8 layout (1), u64 guest MAC, u32 guest IPv4 (0 unknown), u16
/// next TCP forward port, u16 next UDP forward port, u32 n × <see cref="TcpFlowState"/>, u32 m ×
/// <see cref="ResetFlowState"/>, u32 k × <see cref="DatagramFlowState"/>. Refusals (target to
/// source): u32 n × {u32 index of a moving TCP flow, u8 <see cref="FlowResetReason"/>}.
/// The target refuses the whole stream for a flow that no gateway could have written: sequence
/// numbers out of order, buffers larger than its own, a guest address outside its network, a
/// host socket whose peer is not where the flow's destination maps to on this gateway (a stream
/// must not make the target open connections of its choosing), a key listed twice.
/// </remarks>
public sealed class GatewayFlowSection : IHandoverSection, IDisposable
{
    /// <summary>Bytes of flow state one stream carries at most; flows beyond are reset (reason too_large).</summary>
    public const long Budget = StateStream.MaxSectionBytes - (1 << 20);

    private const byte Layout = 1;
    private const int MaxFlows = 65536;

    private static readonly HashSet<FlowKey> s_none = [];

    private readonly Func<Gateway?> _gateway;
    private readonly ILogger _logger;
    private readonly NetworkLock _lock = new();
    private GatewayExport? _export;
    private Gateway? _exporting;
    private Gateway? _importing;

    /// <summary>Target: what the apply took over, logged by <see cref="Activate"/>.</summary>
    private (int Moved, int Datagrams, int Reset)? _imported;
    private byte[] _refusals = [];

    /// <summary>Source: what the target refused at the release (null: all of it), for the result after <see cref="Complete"/>; set by <see cref="Release"/>.</summary>
    private Dictionary<int, FlowResetReason>? _refused;
    private bool _released;

    /// <summary>Source: a handover done and not yet counted (<see cref="LastResult"/> counts and logs it).</summary>
    private (GatewayExport Export, Dictionary<int, FlowResetReason>? Refused)? _uncounted;
    private Dictionary<string, long>? _lastResult;

    /// <summary>The section of the gateway <paramref name="gateway"/> returns (null: none, or not started).</summary>
    public GatewayFlowSection(Func<GatewayEnd?> gateway, ILogger logger)
        : this(() => gateway()?.Gateway, logger)
    {
    }

    internal GatewayFlowSection(Func<Gateway?> gateway, ILogger logger)
    {
        _gateway = gateway;
        _logger = logger;
    }

    public string Name => "gateway.flows";

    /// <summary>
    /// The forwards the same stream carries (its <c>gateway.forwards</c> section, read before this
    /// one): a host forward's connection may come in on one of those as well as on the options'.
    /// </summary>
    public Func<IReadOnlyList<HostForward>>? CarriedForwards { get; set; }

    /// <summary>
    /// Source: why a connection to a virtual service cannot move, or null when it moves (the
    /// tunnel's hook, docs/migration.md "Tunnel sockets"); without a hook none moves (reason tunnel).
    /// </summary>
    internal Func<TcpConnection, FlowResetReason?>? VirtualMoves { get; set; }

    /// <summary>
    /// Target: the far end (a socket pair's) for a moved connection to a virtual service, or null
    /// when the tunnel has none for it (the guest gets a RST); without a hook none is taken (reason tunnel).
    /// </summary>
    internal Func<FlowKey, Socket?>? VirtualFar { get; set; }

    /// <summary>
    /// What the last migration moved and ended. Counted (and logged) when first read after
    /// <see cref="Complete"/>, which the source reaches with its flows locked and the target waiting.
    /// </summary>
    public IReadOnlyDictionary<string, long>? LastResult
    {
        get
        {
            if (_uncounted is { } handedOver)
            {
                _uncounted = null;
                Summarize(handedOver.Export, handedOver.Refused);
            }

            return _lastResult;
        }
    }

    /// <summary>
    /// Source: the moving connections the target refused at the last release (reset instead), so
    /// that the tunnel's section counts only the sockets whose flows the target took.
    /// </summary>
    internal IReadOnlySet<FlowKey> LastRefused { get; private set; } = s_none;

    private Gateway? Gateway => _gateway();

    /// <summary>Starts the network lock's helper ahead of a migration, so the freeze does not wait for it.</summary>
    public Task WarmAsync() => Task.Run(() =>
    {
        try
        {
            _lock.Prepare();
        }
        catch (NetworkLockException)
        {
            // Reported when a migration needs the lock.
        }
    });

    public async Task FreezeAsync(CancellationToken cancellationToken)
    {
        if (Gateway is { } gateway)
        {
            // Prepared already (migrate's warm-up started it): no trip through the thread pool.
            var warm = _lock.IsPrepared ? Task.CompletedTask : WarmAsync();
            await gateway.FreezeAsync(cancellationToken).ConfigureAwait(false);
            await warm.ConfigureAwait(false);
            _exporting = gateway;
        }
    }

    public void Write(StateSectionWriter writer)
    {
        if (_exporting is not { } gateway)
        {
            // Not frozen (no migration under way, or no gateway): nothing live to carry.
            writer.WriteBool(false);
            return;
        }

        var export = gateway.ExportFlows(_lock, Budget, VirtualMoves);
        _export = export;
        writer.WriteBool(true);
        writer.WriteByte(Layout);
        writer.WriteInt64((long)export.GuestMac);
        writer.WriteUInt32(export.GuestIp);
        writer.WriteUInt16(export.TcpForwardPort);
        writer.WriteUInt16(export.UdpForwardPort);
        writer.WriteUInt32((uint)export.Moving.Count);
        foreach (var (_, state, _) in export.Moving)
        {
            state.Write(writer);
        }

        writer.WriteUInt32((uint)export.Resetting.Count);
        foreach (var (_, reset, _) in export.Resetting)
        {
            reset.Write(writer);
        }

        writer.WriteUInt32((uint)export.Datagrams.Count);
        foreach (var flow in export.Datagrams)
        {
            flow.Write(writer);
        }
    }

    public Task ThawAsync()
    {
        if (_exporting is { } gateway)
        {
            if (_export is { } export)
            {
                gateway.ThawExport(export, _lock);
            }
            else
            {
                gateway.Thaw();
            }
        }

        _export = null;
        _exporting = null;
        return Task.CompletedTask;
    }

    public void Release(ReadOnlyMemory<byte>? refusals)
    {
        if (_exporting is not { } gateway || _export is not { } export)
        {
            return;
        }

        var refused = refusals is { } bytes ? ReadRefusals(bytes) : null;
        gateway.ReleaseFlows(export, refused);

        // Which the tunnel's section leaves out of its count; nothing to build in the usual case of none.
        LastRefused = refused is { Count: 0 } ? s_none : new HashSet<FlowKey>(export.Moving.Where((_, i) => refused is null || refused.ContainsKey(i)).Select(m => m.State.Key));

        // Counted and logged later (LastResult): the target waits for the commit meanwhile.
        _refused = refused;
        _released = true;
    }

    public void Complete()
    {
        if (_exporting is { } gateway && _export is { Locked: true })
        {
            gateway.UnlockQuietly(_lock);
        }

        if (_released && _export is { } export)
        {
            _uncounted = (export, _refused);
        }

        _released = false;
        _refused = null;
        _export = null;
        _exporting = null;
    }

    private void Summarize(GatewayExport export, Dictionary<int, FlowResetReason>? refused)
    {
        // Plain loops, no LINQ: this runs between the target's last reply and the source's outcome.
        var icmp = 0;
        foreach (var flow in export.Datagrams)
        {
            icmp += flow.Icmp ? 1 : 0;
        }

        var result = new Dictionary<string, long>
        {
            ["tcp"] = export.Moving.Count - (refused?.Count ?? export.Moving.Count),
            ["udp"] = export.Datagrams.Count - icmp,
            ["icmp"] = icmp,
        };
        var reasons = new Dictionary<FlowResetReason, int>();
        foreach (var (_, reset, _) in export.Resetting)
        {
            reasons[reset.Reason] = reasons.GetValueOrDefault(reset.Reason) + 1;
        }

        for (var i = 0; i < export.Moving.Count; i++)
        {
            if (refused is null || refused.TryGetValue(i, out _))
            {
                var reason = refused is null ? FlowResetReason.TargetRefused : refused[i];
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
            }
        }

        var resets = 0;
        foreach (var (reason, count) in reasons)
        {
            result["reset-" + StackCounters.Name(reason).Replace('_', '-')] = count;
            resets += count;
        }

        result["reset"] = resets;
        _lastResult = result;

        // Read while the source sets its outcome: the log line goes on another thread, off that path.
        var logged = new Handed(_logger, (int)result["tcp"], export.Datagrams.Count, resets, reasons);
        ThreadPool.UnsafeQueueUserWorkItem(static l => StackLog.FlowsMigrated(l.Logger, l.Moved, l.Datagrams, "handed over", l.Reset, Describe(l.Reasons)), logged, preferLocal: false);
    }

    private sealed record Handed(ILogger Logger, int Moved, int Datagrams, int Reset, Dictionary<FlowResetReason, int> Reasons);

    public Action Read(StateSectionReader reader)
    {
        _refusals = [];
        _importing = null;
        if (!reader.ReadBool())
        {
            return static () => { };
        }

        var layout = reader.ReadByte();
        if (layout != Layout)
        {
            throw reader.Error($"flow layout {layout}; this NetWire reads layout {Layout}");
        }

        var plan = new GatewayFlowPlan
        {
            GuestMac = (ulong)reader.ReadInt64(),
            GuestIp = reader.ReadUInt32(),
            TcpForwardPort = reader.ReadUInt16(),
            UdpForwardPort = reader.ReadUInt16(),
        };
        if (plan.GuestMac > 0xFFFF_FFFF_FFFF)
        {
            throw reader.Error($"guest MAC {plan.GuestMac:X}");
        }

        var keys = new HashSet<FlowKey>();
        var tcp = reader.ReadCount(MaxFlows, 64);
        for (var i = 0; i < tcp; i++)
        {
            var state = TcpFlowState.Read(reader);
            if (!keys.Add(state.Key))
            {
                throw reader.Error($"flow {state.Key} is listed twice");
            }

            plan.Tcp.Add(state);
        }

        var resets = reader.ReadCount(MaxFlows, 17);
        for (var i = 0; i < resets; i++)
        {
            var reset = ResetFlowState.Read(reader);
            if (!keys.Add(reset.Key))
            {
                throw reader.Error($"flow {reset.Key} is listed twice");
            }

            plan.Resets.Add(reset);
        }

        var datagrams = reader.ReadCount(MaxFlows, 24);
        for (var i = 0; i < datagrams; i++)
        {
            plan.Datagrams.Add(DatagramFlowState.Read(reader));
        }

        if (Gateway is not { } gateway)
        {
            // No gateway here: the source resets every connection itself.
            _refusals = WriteRefusals(Enumerable.Range(0, plan.Tcp.Count).ToDictionary(i => i, _ => FlowResetReason.NoGateway));
            return static () => { };
        }

        Check(reader, gateway, plan, [.. gateway.Options.Forwards, .. CarriedForwards?.Invoke() ?? []]);
        var refused = Refuse(gateway, plan);
        _refusals = WriteRefusals(refused);
        return () =>
        {
            gateway.ImportFlows(plan, refused, VirtualFar);
            _importing = gateway;
            _imported = (plan.Tcp.Count - refused.Count, plan.Datagrams.Count, refused.Count + plan.Resets.Count);
        };
    }

    public ReadOnlyMemory<byte> TakeRefusals() => _refusals;

    public void Activate()
    {
        _importing?.ActivateImported();
        _importing = null;

        // Logged once the flows run: the source waits for the target's reply meanwhile.
        if (_imported is { } imported)
        {
            _imported = null;
            StackLog.FlowsMigrated(_logger, imported.Moved, imported.Datagrams, "taken over", imported.Reset, string.Empty);
        }
    }

    public void Dispose() => _lock.Dispose();

    /// <summary>Refuses the stream for flows no gateway of this network could have written.</summary>
    private static void Check(StateSectionReader reader, Gateway gateway, GatewayFlowPlan plan, IReadOnlyList<HostForward> forwards)
    {
        var options = gateway.Options;
        if (plan.GuestIp != 0 && !IsGuestAddress(gateway, plan.GuestIp))
        {
            throw reader.Error($"guest address {Ip.Format(plan.GuestIp)} is outside {options.Network}");
        }

        var capacity = options.EffectiveTcpBufferBytes;
        foreach (var flow in plan.Tcp)
        {
            CheckGuest(reader, gateway, flow.Key);
            if (flow.ToGuest.Length > capacity || flow.ToHost.Length > capacity)
            {
                throw reader.Error($"flow {flow.Key} buffers {flow.ToGuest.Length} and {flow.ToHost.Length} bytes; this gateway's hold {capacity}");
            }

            if (flow.Host is not { } host)
            {
                continue;
            }

            var expected = flow.Origin == TcpFlowOrigin.Forward ? IsForward(forwards, flow.Key, host.Local) : gateway.TryMapDestination(flow.Key.RemoteIp, out var address, out _) && address.Equals(host.Remote.Address) && host.Remote.Port == flow.Key.RemotePort;
            if (!expected)
            {
                throw reader.Error($"flow {flow.Key}: host socket {host.Local} -> {host.Remote} is not where this gateway maps it");
            }
        }

        foreach (var reset in plan.Resets)
        {
            CheckGuest(reader, gateway, reset.Key);
        }

        foreach (var flow in plan.Datagrams)
        {
            CheckGuest(reader, gateway, flow.Key);
        }
    }

    private static void CheckGuest(StateSectionReader reader, Gateway gateway, FlowKey key)
    {
        if (key.GuestIp.IsIpv4 ? !IsGuestAddress(gateway, key.GuestIp.Ipv4) : !IsGuestAddress6(gateway, key.GuestIp))
        {
            throw reader.Error($"flow {key}: the guest address is outside {(key.GuestIp.IsIpv4 ? gateway.Options.Network : gateway.Options.Network6)}");
        }
    }

    /// <summary>An IPv6 guest address: in the gateway's prefix or link-local, and not one of the gateway's own.</summary>
    private static bool IsGuestAddress6(Gateway gateway, IpAddr address) =>
        gateway.Options.Ipv6Enabled && (gateway.Options.Network6.Contains(address) || address.IsIpv6LinkLocal)
        && address != gateway.GatewayIp6 && address != gateway.DnsIp6 && !address.IsIpv6Multicast && !address.IsIpv6Unspecified;

    private static bool IsGuestAddress(Gateway gateway, uint address) =>
        gateway.Options.Network.Contains(address) && address != gateway.GatewayIp && address != gateway.DnsIp
        && address != gateway.Options.Network.Network && address != gateway.Options.Network.Broadcast;

    private static bool IsForward(IReadOnlyList<HostForward> forwards, FlowKey key, IPEndPoint local)
    {
        foreach (var forward in forwards)
        {
            if (forward.Transport == Transport.Tcp && forward.GuestPort == key.GuestPort && forward.Listen.Port == local.Port)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>What this gateway cannot take: flows needing TCP_REPAIR it may not use, local addresses it lacks, more than its table holds, tunnel connections it has no session for.</summary>
    private Dictionary<int, FlowResetReason> Refuse(Gateway gateway, GatewayFlowPlan plan)
    {
        var refused = new Dictionary<int, FlowResetReason>();
        var permitted = plan.Tcp.Exists(f => f.Host is not null) && TcpRepair.IsPermitted();
        var local = new Dictionary<IPAddress, bool>();
        var room = gateway.Options.MaxTcpConnections;
        lock (gateway.Sync)
        {
            room -= gateway.Tcp.Count;
        }

        for (var i = 0; i < plan.Tcp.Count; i++)
        {
            var flow = plan.Tcp[i];
            FlowResetReason? reason = null;
            if (flow.Host is { } host)
            {
                if (!local.TryGetValue(host.Local.Address, out var here))
                {
                    here = TcpRepair.IsLocalAddress(host.Local.Address);
                    local[host.Local.Address] = here;
                }

                reason = !permitted ? FlowResetReason.TargetNoRepair : !here ? FlowResetReason.AddressUnavailable : null;
            }
            else if (flow.Origin == TcpFlowOrigin.Virtual && VirtualFar is null)
            {
                reason = FlowResetReason.Tunnel;
            }

            if (reason is null && --room < 0)
            {
                reason = FlowResetReason.TableFull;
            }

            if (reason is { } why)
            {
                refused[i] = why;
            }
        }

        return refused;
    }

    private static byte[] WriteRefusals(Dictionary<int, FlowResetReason> refused)
    {
        var writer = new StateSectionWriter();
        writer.WriteUInt32((uint)refused.Count);
        foreach (var (index, reason) in refused)
        {
            writer.WriteUInt32((uint)index);
            writer.WriteByte((byte)reason);
        }

        return writer.Written.ToArray();
    }

    private Dictionary<int, FlowResetReason> ReadRefusals(ReadOnlyMemory<byte> bytes)
    {
        var reader = new StateSectionReader(Name, bytes);
        var count = reader.ReadCount(MaxFlows, 5);
        var refused = new Dictionary<int, FlowResetReason>(count);
        for (var i = 0; i < count; i++)
        {
            var index = reader.ReadUInt32();
            var reason = (FlowResetReason)reader.ReadByte();
            if (index < int.MaxValue && Enum.IsDefined(reason))
            {
                refused[(int)index] = reason;
            }
        }

        return refused;
    }

    private static string Describe(Dictionary<FlowResetReason, int> reasons) =>
        string.Join(", ", reasons.Select(r => $"{StackCounters.Name(r.Key)} {r.Value}"));
}
