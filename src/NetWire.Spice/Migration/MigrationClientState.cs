namespace NetWire.Spice.Migration;

/// <summary>One client's place in a migration away from this server.</summary>
internal enum MigrationClientState
{
    /// <summary>No migration.</summary>
    None,

    /// <summary>MIGRATE_BEGIN sent, no answer yet.</summary>
    Waiting,

    /// <summary>MIGRATE_CONNECTED: the client holds links to the target; it gets MIGRATE_END or MIGRATE_CANCEL.</summary>
    Connected,

    /// <summary>MIGRATE_CONNECT_ERROR: it gets SWITCH_HOST if the migration completes.</summary>
    ConnectError,

    /// <summary>The wait ended without an answer; it gets SWITCH_HOST, and a late MIGRATE_CONNECTED gets MIGRATE_CANCEL.</summary>
    NotConnected,
}
