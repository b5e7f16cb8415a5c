using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using NetWire.Stack;
using NetWire.Core.Net;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Tunnel;

/// <summary>
/// The tunnel's side of the user-mode gateway: virtual IPs in the guest network, which client
/// and service each (address, port) belongs to, and the opening of guest connections as tunnel
/// sockets. One instance per gateway; every tunnel client of the server shares it.
/// </summary>
/// <remarks>
/// How this works (protocol.md §6.4): each service group of a client gets one virtual IP, the lowest
/// free address from just past the DHCP pool (slirp: .31) to the last host address, skipping
/// the gateway, DNS and guest addresses. The gateway asks <see cref="IsVirtualAddress"/> for ARP
/// and SYNs under its own lock, so the answer comes from an immutable snapshot with no lock. A
/// SYN to a virtual IP becomes <see cref="ConnectAsync"/>: the owning client sends SOCKET_OPEN and
/// the gateway's handshake waits for OPEN_ACK; a port with no service, a NACK, a full socket table
/// or a timeout give the guest a RST. Addresses and services go when their client leaves.
/// Lock order: gateway lock, then this lock, then a channel's lock; never the other way.
/// </remarks>
internal sealed class TunnelGateway : IVirtualServices
{
    private readonly Lock _gate = new();
    private readonly Dictionary<uint, VirtualHost> _hosts = [];
    private readonly HashSet<TunnelSession> _clients = [];

    /// <summary>Target: sockets a migration carried, by session id, until that session's tunnel channel starts.</summary>
    private readonly Dictionary<uint, MigratedTunnel> _migrated = [];
    private readonly uint _first;
    private readonly uint _last;
    private readonly uint[] _reserved;
    private readonly Func<IPAddress?> _guestAddress;

    /// <summary>The addresses in <see cref="_hosts"/>, republished on every change; read without a lock.</summary>
    private FrozenSet<uint> _addresses = FrozenSet<uint>.Empty;

    public TunnelGateway(GatewayOptions network, Func<IPAddress?> guestAddress, TunnelOptions options)
    {
        Options = options;
        _guestAddress = guestAddress;
        _first = Ip.ToUInt(network.DhcpStart) + (uint)network.DhcpPoolSize;
        _last = network.Network.Broadcast - 1;
        _reserved = [Ip.ToUInt(network.GatewayIp), Ip.ToUInt(network.DnsIp)];
    }

    public TunnelOptions Options { get; }

    public TunnelCounters Counters { get; } = new();

    /// <summary>Tunnel clients now.</summary>
    public int ClientCount
    {
        get
        {
            lock (_gate)
            {
                return _clients.Count;
            }
        }
    }

    /// <inheritdoc/>
    public bool IsVirtualAddress(uint address) => Volatile.Read(ref _addresses).Contains(address);

    /// <inheritdoc/>
    public Task<Socket> ConnectAsync(uint guestIp, ushort guestPort, uint address, ushort port, CancellationToken cancellationToken)
    {
        TunnelSession owner;
        uint serviceId;
        lock (_gate)
        {
            if (!_hosts.TryGetValue(address, out var host) || !host.Ports.TryGetValue(port, out serviceId))
            {
                Counters.Refused();
                return Refused();
            }

            owner = host.Owner;
        }

        return owner.OpenAsync(serviceId, new FlowKey(IpAddr.FromIpv4(guestIp), guestPort, IpAddr.FromIpv4(address), port), cancellationToken);
    }

    /// <summary>A refusal as the gateway expects it (the guest gets a RST).</summary>
    public static Task<Socket> Refused() => Task.FromException<Socket>(new SocketException((int)SocketError.ConnectionRefused));

    /// <summary>Admits a client; false when <see cref="TunnelOptions.MaxClients"/> are connected.</summary>
    public bool TryAddClient(TunnelSession client)
    {
        lock (_gate)
        {
            if (_clients.Count >= Options.MaxClients)
            {
                return false;
            }

            return _clients.Add(client);
        }
    }

    /// <summary>
    /// Gives <paramref name="service"/> of <paramref name="owner"/> an address: its group's, or a new
    /// one. Null (and why) when no address is free or the port is taken on that address.
    /// </summary>
    public uint? AddService(TunnelSession owner, TunnelService service, out string error, uint preferred = 0)
    {
        error = string.Empty;
        lock (_gate)
        {
            // A migrated session's group keeps the address it had on the source when that is free here.
            var address = preferred != 0 && IsFree(preferred) ? preferred : 0;
            if (address != 0)
            {
                _hosts.Add(address, new VirtualHost(owner, service.Group));
            }

            foreach (var (candidate, host) in _hosts)
            {
                if (address == 0 && host.Owner == owner && host.Group == service.Group)
                {
                    address = candidate;
                    break;
                }
            }

            if (address == 0)
            {
                address = FreeAddress();
                if (address == 0)
                {
                    error = "no free virtual address in the guest network";
                    return null;
                }

                _hosts.Add(address, new VirtualHost(owner, service.Group));
            }

            var ports = _hosts[address].Ports;
            if (!ports.TryAdd(service.Port, service.Id))
            {
                error = $"port {service.Port} of group {service.Group} already has service {ports[service.Port]}";
                if (ports.Count == 0)
                {
                    _hosts.Remove(address);
                }

                return null;
            }

            Publish();
            return address;
        }
    }

    /// <summary>Takes a service's port off its address; the address goes with its last service.</summary>
    public void RemoveService(TunnelSession owner, uint address, ushort port)
    {
        lock (_gate)
        {
            if (_hosts.TryGetValue(address, out var host) && host.Owner == owner)
            {
                host.Ports.Remove(port);
                if (host.Ports.Count == 0)
                {
                    _hosts.Remove(address);
                }

                Publish();
            }
        }
    }

    /// <summary>A client left: its addresses and services go.</summary>
    public void RemoveClient(TunnelSession owner)
    {
        lock (_gate)
        {
            _clients.Remove(owner);
            List<uint> gone = [];
            foreach (var (address, host) in _hosts)
            {
                if (host.Owner == owner)
                {
                    gone.Add(address);
                }
            }

            foreach (var address in gone)
            {
                _hosts.Remove(address);
            }

            Publish();
        }
    }

    /// <summary>The tunnel clients now (a migration flushes those that can follow it).</summary>
    public List<TunnelSession> Clients()
    {
        lock (_gate)
        {
            return [.. _clients];
        }
    }

    /// <summary>True when <paramref name="address"/> is in the virtual range and nobody uses it. Caller holds the lock.</summary>
    public bool IsVirtualRange(uint address) => address >= _first && address <= _last && Array.IndexOf(_reserved, address) < 0;

    /// <summary>Target: what a migration carried for session <paramref name="sessionId"/>, kept until its tunnel channel starts or <paramref name="timeout"/> passes.</summary>
    public void AddMigrated(MigratedTunnel migrated, TimeSpan timeout)
    {
        lock (_gate)
        {
            if (_migrated.Remove(migrated.SessionId, out var old))
            {
                old.Dispose();
            }

            _migrated.Add(migrated.SessionId, migrated);
        }

        _ = DropUnclaimedAsync(migrated, timeout);
    }

    /// <summary>Target: the far end of a carried socket for the gateway's imported connection <paramref name="key"/>, or null.</summary>
    public Socket? TakeFar(FlowKey key)
    {
        lock (_gate)
        {
            foreach (var migrated in _migrated.Values)
            {
                foreach (var socket in migrated.Sockets)
                {
                    if (socket.Key == key && !socket.Attached)
                    {
                        socket.Attached = true;
                        return socket.Far;
                    }
                }
            }
        }

        return null;
    }

    /// <summary>Target: the carried sockets of <paramref name="sessionId"/>, taken by its tunnel channel; null when there are none.</summary>
    public MigratedTunnel? TakeMigrated(uint sessionId)
    {
        lock (_gate)
        {
            return _migrated.Remove(sessionId, out var migrated) ? migrated : null;
        }
    }

    private async Task DropUnclaimedAsync(MigratedTunnel migrated, TimeSpan timeout)
    {
        await Task.Delay(timeout).ConfigureAwait(false);
        lock (_gate)
        {
            if (!_migrated.TryGetValue(migrated.SessionId, out var now) || now != migrated)
            {
                return;
            }

            _migrated.Remove(migrated.SessionId);
        }

        // The client never came: the guest's connections see their far side close.
        migrated.Dispose();
    }

    private bool IsFree(uint address)
    {
        var guest = _guestAddress() is { } g ? Ip.ToUInt(g) : 0;
        return address != guest && IsVirtualRange(address) && !_hosts.ContainsKey(address);
    }

    private uint FreeAddress()
    {
        for (var candidate = _first; candidate <= _last; candidate++)
        {
            if (IsFree(candidate))
            {
                return candidate;
            }
        }

        return 0;
    }

    private void Publish() => Volatile.Write(ref _addresses, _hosts.Keys.ToFrozenSet());

    private sealed class VirtualHost(TunnelSession owner, uint group)
    {
        public TunnelSession Owner { get; } = owner;

        public uint Group { get; } = group;

        public Dictionary<ushort, uint> Ports { get; } = [];
    }
}

/// <summary>What the tunnel did, for tests, status and the benchmark. Interlocked.</summary>
internal sealed class TunnelCounters
{
    private long _opened;
    private long _refused;
    private long _protocolErrors;
    private long _droppedData;

    /// <summary>Sockets the client accepted (OPEN_ACK).</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>Guest connections refused: no service, NACK, no free socket, open timeout.</summary>
    public long RefusedCount => Interlocked.Read(ref _refused);

    /// <summary>Channels ended for a protocol violation.</summary>
    public long ProtocolErrors => Interlocked.Read(ref _protocolErrors);

    /// <summary>SOCKET_DATA for a socket already closing on the guest side (dropped, as spice-server did).</summary>
    public long DroppedData => Interlocked.Read(ref _droppedData);

    public void Open() => Interlocked.Increment(ref _opened);

    public void Refused() => Interlocked.Increment(ref _refused);

    public void ProtocolError() => Interlocked.Increment(ref _protocolErrors);

    public void DropData() => Interlocked.Increment(ref _droppedData);
}
