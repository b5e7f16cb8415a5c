using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Stack;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;

namespace NetWire.Tunnel;

/// <summary>
/// State section <c>tunnel.sockets</c>: the tunnel's side of every guest connection to a tunnel
/// service whose client follows the migration (docs/migration.md, "Tunnel sockets"). The
/// guest side of those connections moves in <c>gateway.flows</c> like any other (a flow whose far
/// side is virtual, without a host socket); this section carries the relays between the gateway
/// and the client: ids, tokens both ways, bytes buffered both ways, FIN state.
/// </summary>
/// <remarks>
/// Registered before <c>gateway.flows</c>, so that on the source the tunnel is flushed before the
/// gateway freezes (a relay may still be writing into its socket pair, which the running gateway
/// drains), and on the target the socket pairs exist when the gateway imports its flows and asks
/// for their far ends (<see cref="GatewayFlowSection.VirtualFar"/>).
///
/// Layout: u8 layout (1), u32 n sessions × { u32 session id, u32 services × { u32 id, u32 group,
/// u16 port, u32 virtual IPv4 }, u32 sockets × { u16 connection id, u32 service id, u32 guest
/// IPv4, u16 guest port, u32 virtual IPv4, u16 port, u32 window granted, u32 client's grant, u32
/// tokens held, u32 written not returned, u8 flags (1 client FIN, 2 our FIN sent, 4 pair shut for
/// writing), bytes to the client, bytes to the guest (need no token), u32 k × bytes (client data
/// queued, one token each) } }. The target refuses the whole stream, before anything is applied,
/// for a section no server of its limits could have written: more sessions, services or
/// sockets than it takes, a session id 0 or twice, a connection id out of its range or twice,
/// tokens past the windows, more queued than the window, a piece larger than its data size, an
/// address outside its virtual range, or more buffered than a socket can hold.
/// </remarks>
internal sealed class TunnelStateSection : IHandoverSection
{
    private const byte Layout = 1;

    /// <summary>Bytes one socket may carry in each direction: its window of the largest pieces, plus what a socket pair queues.</summary>
    private const int MaxSocketBytes = 16 << 20;

    private readonly TunnelGateway _tunnel;
    private readonly Func<GatewayEnd?> _gateway;
    private readonly GatewayFlowSection _flows;
    private readonly ILogger _logger;
    private readonly HashSet<FlowKey> _moving = [];
    private readonly HashSet<FlowKey> _unflushed = [];
    private List<TunnelSession> _flushed = [];
    private List<TunnelSession> _held = [];
    private Dictionary<string, long>? _lastResult;
    private bool _released;
    private int _releasedClients;

    public TunnelStateSection(TunnelGateway tunnel, Func<GatewayEnd?> gateway, GatewayFlowSection flows, ILogger logger)
    {
        _tunnel = tunnel;
        _gateway = gateway;
        _flows = flows;
        _logger = logger;
        flows.VirtualMoves = Moves;
        flows.VirtualFar = tunnel.TakeFar;
    }

    public string Name => "tunnel.sockets";

    /// <summary>How long the source waits for a client's MIGRATE_FLUSH_MARK (and for its relays to pause).</summary>
    public TimeSpan FlushTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>How long a target keeps carried sockets for a client that has not come yet (<c>SpiceServerOptions.MigrationTargetTimeout</c>).</summary>
    public TimeSpan ClaimTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, long>? LastResult => _lastResult;

    public async Task FreezeAsync(CancellationToken cancellationToken)
    {
        _moving.Clear();
        _unflushed.Clear();
        var sessions = _tunnel.Clients().Where(s => s.CanMigrate).ToList();

        // Held before the wait: a migration cancelled meanwhile thaws them all.
        _held = sessions;
        var flushed = await Task.WhenAll(sessions.Select(s => s.FlushAsync(FlushTimeout))).WaitAsync(cancellationToken).ConfigureAwait(false);
        _flushed = [.. sessions.Where((_, i) => flushed[i])];
        foreach (var session in sessions.Where((_, i) => !flushed[i]))
        {
            _unflushed.UnionWith(session.Keys());
        }
    }

    public void Write(StateSectionWriter writer)
    {
        writer.WriteByte(Layout);
        var gateway = _gateway()?.Gateway;
        var states = gateway is null ? [] : _flushed.Select(s => s.Snapshot(gateway.VirtualHost)).ToList();
        writer.WriteUInt32((uint)states.Count);
        foreach (var state in states)
        {
            writer.WriteUInt32(state.SessionId);
            writer.WriteUInt32((uint)state.Services.Count);
            foreach (var service in state.Services)
            {
                writer.WriteUInt32(service.Id);
                writer.WriteUInt32(service.Group);
                writer.WriteUInt16(service.Port);
                writer.WriteUInt32(service.Address);
            }

            writer.WriteUInt32((uint)state.Sockets.Count);
            foreach (var socket in state.Sockets)
            {
                _moving.Add(socket.Key);
                var relay = socket.State;
                writer.WriteUInt16(relay.Id);
                writer.WriteUInt32(socket.ServiceId);
                writer.WriteUInt32(socket.Key.GuestIp.Ipv4);
                writer.WriteUInt16(socket.Key.GuestPort);
                writer.WriteUInt32(socket.Key.RemoteIp.Ipv4);
                writer.WriteUInt16(socket.Key.RemotePort);
                writer.WriteUInt32(relay.InWindow);
                writer.WriteUInt32(relay.OutGrant);
                writer.WriteUInt32(relay.OutTokens);
                writer.WriteUInt32(relay.Consumed);
                writer.WriteByte((byte)((relay.PeerFin ? 1 : 0) | (relay.FinSent ? 2 : 0) | (relay.InboundDone ? 4 : 0)));
                writer.WriteBytes(relay.ToPeer);
                writer.WriteBytes(relay.ToLocal);
                writer.WriteUInt32((uint)relay.Queued.Count);
                foreach (var chunk in relay.Queued)
                {
                    writer.WriteBytes(chunk);
                }
            }
        }
    }

    public Task ThawAsync()
    {
        foreach (var session in _held)
        {
            session.ResumeAfterMigration();
        }

        Forget();
        return Task.CompletedTask;
    }

    public void Release(ReadOnlyMemory<byte>? refusals)
    {
        // The gateway's section says which flows the target took; a socket whose flow it refused
        // has no far end there, so the target leaves it out of MIGRATE_DATA and the client drops it.
        foreach (var session in _flushed)
        {
            session.HandOver();
        }

        // Counted once the gateway's section (registered after this one) has read which flows
        // the target refused: a socket whose flow was refused is reset, not moved.
        _releasedClients = _flushed.Count;
        _released = true;
    }

    public void Complete()
    {
        if (_released)
        {
            var moved = _moving.Count(key => !_flows.LastRefused.Contains(key));
            _lastResult = new Dictionary<string, long> { ["tunnel"] = moved };
            TunnelLog.SectionMigration(_logger, $"{moved} sockets of {_releasedClients} clients handed over ({_moving.Count - moved} refused by the target)");
            _released = false;
        }

        Forget();
    }

    public Action Read(StateSectionReader reader)
    {
        var layout = reader.ReadByte();
        if (layout != Layout)
        {
            throw reader.Error($"tunnel layout {layout}; this NetWire reads layout {Layout}");
        }

        var options = _tunnel.Options;
        var sessions = new List<TunnelSessionState>();
        var ids = new HashSet<uint>();
        var count = reader.ReadCount(options.MaxClients, 8);
        for (var i = 0; i < count; i++)
        {
            var session = new TunnelSessionState { SessionId = reader.ReadUInt32() };
            if (session.SessionId == 0 || !ids.Add(session.SessionId))
            {
                throw reader.Error($"tunnel session id {session.SessionId} is 0 or listed twice");
            }

            var services = reader.ReadCount(options.MaxServices, 14);
            for (var j = 0; j < services; j++)
            {
                var service = new TunnelServiceState(reader.ReadUInt32(), reader.ReadUInt32(), reader.ReadUInt16(), reader.ReadUInt32());
                if (!_tunnel.IsVirtualRange(service.Address))
                {
                    throw reader.Error($"service {service.Id} at {Ip.Format(service.Address)}, outside this gateway's virtual addresses");
                }

                session.Services.Add(service);
            }

            var sockets = reader.ReadCount(options.MaxSockets, 45);
            var slots = new HashSet<ushort>();
            for (var j = 0; j < sockets; j++)
            {
                session.Sockets.Add(ReadSocket(reader, options, slots));
            }

            sessions.Add(session);
        }

        return () =>
        {
            foreach (var session in sessions)
            {
                _tunnel.AddMigrated(MigratedTunnel.Create(session), ClaimTimeout);
            }
        };
    }

    public ReadOnlyMemory<byte> TakeRefusals() => ReadOnlyMemory<byte>.Empty;

    public void Activate()
    {
        // The relays start when the client's tunnel channel comes (TunnelSession).
    }

    private TunnelSocketState ReadSocket(StateSectionReader reader, TunnelOptions options, HashSet<ushort> slots)
    {
        var id = reader.ReadUInt16();
        if (id >= options.MaxSockets || !slots.Add(id))
        {
            throw reader.Error($"tunnel connection id {id} is out of range (at most {options.MaxSockets - 1}) or listed twice");
        }

        var serviceId = reader.ReadUInt32();
        var key = new FlowKey(IpAddr.FromIpv4(reader.ReadUInt32()), reader.ReadUInt16(), IpAddr.FromIpv4(reader.ReadUInt32()), reader.ReadUInt16());
        if (!_tunnel.IsVirtualRange(key.RemoteIp.Ipv4) || key.GuestPort == 0 || key.RemotePort == 0)
        {
            throw reader.Error($"tunnel connection {id}: {key} is not a connection to a virtual service");
        }

        var inWindow = reader.ReadUInt32();
        var outGrant = reader.ReadUInt32();
        var outTokens = reader.ReadUInt32();
        var consumed = reader.ReadUInt32();
        var flags = reader.ReadByte();
        if (inWindow == 0 || inWindow > options.MaxClientWindow || outGrant > options.MaxClientWindow || outTokens > outGrant || consumed > inWindow || flags > 7)
        {
            throw reader.Error($"tunnel connection {id}: tokens {outTokens} of {outGrant}, {consumed} owed of {inWindow}, flags {flags}");
        }

        var toPeer = reader.ReadBytes(MaxSocketBytes);
        var toLocal = reader.ReadBytes(MaxSocketBytes);
        var queuedCount = reader.ReadCount((int)(inWindow - consumed), 4);
        var queued = new List<byte[]>(queuedCount);
        for (var k = 0; k < queuedCount; k++)
        {
            queued.Add(reader.ReadBytes(options.MaxDataSize));
        }

        return new TunnelSocketState(serviceId, key, new TunnelRelayState
        {
            Id = id,
            InWindow = inWindow,
            OutGrant = outGrant,
            OutTokens = outTokens,
            Consumed = consumed,
            PeerFin = (flags & 1) != 0,
            FinSent = (flags & 2) != 0,
            InboundDone = (flags & 4) != 0,
            ToPeer = toPeer,
            ToLocal = toLocal,
            Queued = queued,
        });
    }

    /// <summary>Source, for the gateway's export: null when a connection to a virtual service moves, else why not.</summary>
    private FlowResetReason? Moves(Stack.Tcp.TcpConnection connection) =>
        _moving.Contains(connection.Key) ? null : _unflushed.Contains(connection.Key) ? FlowResetReason.TunnelNoFlush : FlowResetReason.Tunnel;

    private void Forget()
    {
        _held = [];
        _flushed = [];
    }
}

/// <summary>A tunnel session's moving sockets and its services, as the state stream carries them.</summary>
internal sealed class TunnelSessionState
{
    public uint SessionId { get; init; }

    public List<TunnelServiceState> Services { get; } = [];

    public List<TunnelSocketState> Sockets { get; } = [];
}

/// <summary>A service as the source mapped it: the client adds it again on the target and gets the same address.</summary>
internal sealed record TunnelServiceState(uint Id, uint Group, ushort Port, uint Address);

/// <summary>One moving socket: its service, the gateway connection it belongs to, and its relay.</summary>
internal sealed record TunnelSocketState(uint ServiceId, FlowKey Key, TunnelRelayState State);

/// <summary>Target: a session's carried sockets on new socket pairs, until its tunnel channel starts (<see cref="TunnelGateway.TakeMigrated"/>).</summary>
internal sealed class MigratedTunnel : IDisposable
{
    private MigratedTunnel(uint sessionId, IReadOnlyList<TunnelServiceState> services, List<MigratedSocket> sockets)
    {
        SessionId = sessionId;
        Services = services;
        Sockets = sockets;
    }

    public uint SessionId { get; }

    public IReadOnlyList<TunnelServiceState> Services { get; }

    public IReadOnlyList<MigratedSocket> Sockets { get; }

    public static MigratedTunnel Create(TunnelSessionState state)
    {
        var sockets = new List<MigratedSocket>(state.Sockets.Count);
        foreach (var socket in state.Sockets)
        {
            var (near, far) = SocketPair.Create();
            sockets.Add(new MigratedSocket(socket.ServiceId, socket.Key, socket.State, near, far));
        }

        return new MigratedTunnel(state.SessionId, state.Services, sockets);
    }

    public void Dispose()
    {
        foreach (var socket in Sockets)
        {
            socket.Near.Dispose();
            if (!socket.Attached)
            {
                socket.Far.Dispose();
            }
        }
    }
}

/// <summary>A carried socket: the near end for its relay, the far end for the gateway's connection (once <see cref="Attached"/>).</summary>
internal sealed class MigratedSocket(uint serviceId, FlowKey key, TunnelRelayState state, Socket near, Socket far)
{
    public uint ServiceId { get; } = serviceId;

    public FlowKey Key { get; } = key;

    public TunnelRelayState State { get; } = state;

    public Socket Near { get; } = near;

    public Socket Far { get; } = far;

    /// <summary>The gateway took the far end (its connection was imported).</summary>
    public bool Attached { get; set; }
}
