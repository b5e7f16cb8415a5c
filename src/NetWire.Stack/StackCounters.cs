namespace NetWire.Stack;

/// <summary>
/// The gateway's counters: drops by <see cref="StackDrop"/> reason and flow totals. Written
/// under the gateway lock or with Interlocked; read from anywhere with Interlocked.
/// </summary>
public sealed class StackCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<StackDrop>().Length];
    private long _tcpOpened;
    private long _tcpRefused;
    private long _udpFlows;
    private long _retransmits;
    private long _dhcpLeases;
    private long _flowsMovedOut;
    private long _flowsMovedIn;
    private readonly long[] _migrationResets = new long[Enum.GetValues<Migration.FlowResetReason>().Length + 1];
    private long _tftpTransfers;
    private long _routerAdvertisements;
    private long _dhcpv6Replies;

    /// <summary>Drops for one reason.</summary>
    public long Drops(StackDrop reason) => Interlocked.Read(ref _drops[(int)reason]);

    /// <summary>TCP connections relayed to a host socket.</summary>
    public long TcpOpened => Interlocked.Read(ref _tcpOpened);

    /// <summary>TCP connections whose host connect failed (answered with RST).</summary>
    public long TcpRefused => Interlocked.Read(ref _tcpRefused);

    /// <summary>UDP flows opened.</summary>
    public long UdpFlows => Interlocked.Read(ref _udpFlows);

    /// <summary>TCP segments sent again to the guest (RTO, fast retransmit, probes).</summary>
    public long Retransmits => Interlocked.Read(ref _retransmits);

    /// <summary>DHCP leases acknowledged.</summary>
    public long DhcpLeases => Interlocked.Read(ref _dhcpLeases);

    /// <summary>TCP connections handed over to a migration target.</summary>
    public long FlowsMovedOut => Interlocked.Read(ref _flowsMovedOut);

    /// <summary>TCP connections taken over from a migration source.</summary>
    public long FlowsMovedIn => Interlocked.Read(ref _flowsMovedIn);

    /// <summary>TCP connections a migration reset for one reason.</summary>
    public long MigrationResets(Migration.FlowResetReason reason) => Interlocked.Read(ref _migrationResets[(int)reason]);

    /// <summary>TFTP read transfers started.</summary>
    public long TftpTransfers => Interlocked.Read(ref _tftpTransfers);

    /// <summary>Router advertisements sent (solicited and periodic).</summary>
    public long RouterAdvertisements => Interlocked.Read(ref _routerAdvertisements);

    /// <summary>Stateless DHCPv6 replies sent.</summary>
    public long Dhcpv6Replies => Interlocked.Read(ref _dhcpv6Replies);

    /// <summary>Counts a drop.</summary>
    public void Drop(StackDrop reason) => Interlocked.Increment(ref _drops[(int)reason]);

    internal void TcpOpen() => Interlocked.Increment(ref _tcpOpened);

    internal void TcpRefuse() => Interlocked.Increment(ref _tcpRefused);

    internal void UdpFlow() => Interlocked.Increment(ref _udpFlows);

    internal void Retransmit() => Interlocked.Increment(ref _retransmits);

    internal void DhcpLease() => Interlocked.Increment(ref _dhcpLeases);

    internal void FlowMovedOut() => Interlocked.Increment(ref _flowsMovedOut);

    internal void FlowMovedIn() => Interlocked.Increment(ref _flowsMovedIn);

    internal void MigrationReset(Migration.FlowResetReason reason) => Interlocked.Increment(ref _migrationResets[(int)reason]);

    internal void TftpTransfer() => Interlocked.Increment(ref _tftpTransfers);

    internal void RouterAdvertisement() => Interlocked.Increment(ref _routerAdvertisements);

    internal void Dhcpv6Reply() => Interlocked.Increment(ref _dhcpv6Replies);

    /// <summary>Every non-zero counter as name/value pairs, for status output.</summary>
    public IReadOnlyList<KeyValuePair<string, long>> Snapshot()
    {
        var list = new List<KeyValuePair<string, long>>
        {
            new("tcp_opened", TcpOpened),
            new("tcp_refused", TcpRefused),
            new("udp_flows", UdpFlows),
            new("tcp_retransmits", Retransmits),
            new("dhcp_leases", DhcpLeases),
            new("tftp_transfers", TftpTransfers),
            new("router_advertisements", RouterAdvertisements),
            new("dhcpv6_replies", Dhcpv6Replies),
        };
        foreach (var reason in Enum.GetValues<StackDrop>())
        {
            var value = Drops(reason);
            if (value != 0)
            {
                list.Add(new("drop_" + Name(reason), value));
            }
        }

        if (FlowsMovedOut != 0)
        {
            list.Add(new("migrated_out_tcp", FlowsMovedOut));
        }

        if (FlowsMovedIn != 0)
        {
            list.Add(new("migrated_in_tcp", FlowsMovedIn));
        }

        foreach (var reason in Enum.GetValues<Migration.FlowResetReason>())
        {
            var value = MigrationResets(reason);
            if (value != 0)
            {
                list.Add(new("migration_reset_" + Name(reason), value));
            }
        }

        return list;
    }

    /// <summary>snake_case name of a reason, as docs/gateway.md lists them.</summary>
    public static string Name(StackDrop reason) => NetWire.Core.Naming.Words(reason.ToString(), '_');

    /// <summary>snake_case name of a migration reset reason, as docs/migration.md lists them.</summary>
    public static string Name(Migration.FlowResetReason reason) => NetWire.Core.Naming.Words(reason.ToString(), '_');
}
