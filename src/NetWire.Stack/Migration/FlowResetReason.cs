namespace NetWire.Stack.Migration;

/// <summary>
/// Why a migration reset a gateway connection instead of moving it (docs/migration.md,
/// "Flows that cannot move"). The guest gets a RST from the target, the host peer one from the
/// source; each is counted by reason and logged.
/// </summary>
public enum FlowResetReason : byte
{
    /// <summary>The connection was still in its handshake (host connect pending, SYN-ACK unanswered).</summary>
    Handshake = 1,

    /// <summary>The source may not use TCP_REPAIR (no CAP_NET_ADMIN).</summary>
    NoRepair = 2,

    /// <summary>The source could not take the network lock (no <c>nft</c>, or it refused).</summary>
    NoLock = 3,

    /// <summary>The host socket was in a state that is not moved, or could not be read.</summary>
    HostState = 4,

    /// <summary>The connection's buffers did not fit the state stream.</summary>
    TooLarge = 5,

    /// <summary>The target may not use TCP_REPAIR.</summary>
    TargetNoRepair = 6,

    /// <summary>The host socket's local address is not on the target, or its addresses are in use there.</summary>
    AddressUnavailable = 7,

    /// <summary>The target's kernel refused the restored socket.</summary>
    RestoreFailed = 8,

    /// <summary>The target has no user-mode gateway.</summary>
    NoGateway = 9,

    /// <summary>The target did not take the gateway's flows (an older NetWire).</summary>
    TargetRefused = 10,

    /// <summary>A connection to a tunnel service whose tunnel client cannot follow it (no migration cap, or not linked to the target).</summary>
    Tunnel = 11,

    /// <summary>The target's connection table is full.</summary>
    TableFull = 12,

    /// <summary>A connection to a tunnel service whose client did not answer the flush (MIGRATE_FLUSH_MARK) in time.</summary>
    TunnelNoFlush = 13,
}
