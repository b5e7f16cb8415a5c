namespace NetWire.Devices.Pcap;

/// <summary>
/// SPICE channel and message names for <see cref="SpiceInspector"/>: the channel types
/// (protocol.md §1.8), the messages every channel shares (§3.1, §3.2), the inputs and cursor
/// channels' (§3.5), the main channel's (§4.1, §4.2) and the tunnel's (§6.2). Other channels' own
/// messages are named by channel and number.
/// </summary>
internal static class SpiceNames
{
    public const byte Main = 1;
    public const byte Inputs = 3;
    public const byte Cursor = 4;
    public const byte Tunnel = 7;

    private static readonly string[] s_channels = ["", "main", "display", "inputs", "cursor", "playback", "record", "tunnel", "smartcard", "usbredir", "port", "webdav"];

    private static readonly string[] s_commonServer = ["", "MIGRATE", "MIGRATE_DATA", "SET_ACK", "PING", "WAIT_FOR_CHANNELS", "DISCONNECTING", "NOTIFY", "LIST"];

    private static readonly string[] s_commonClient = ["", "ACK_SYNC", "ACK", "PONG", "MIGRATE_FLUSH_MARK", "MIGRATE_DATA", "DISCONNECTING"];

    private static readonly string[] s_mainServer =
    [
        "MIGRATE_BEGIN", "MIGRATE_CANCEL", "INIT", "CHANNELS_LIST", "MOUSE_MODE", "MULTI_MEDIA_TIME", "AGENT_CONNECTED",
        "AGENT_DISCONNECTED", "AGENT_DATA", "AGENT_TOKEN", "MIGRATE_SWITCH_HOST", "MIGRATE_END", "NAME", "UUID",
        "AGENT_CONNECTED_TOKENS", "MIGRATE_BEGIN_SEAMLESS", "MIGRATE_DST_SEAMLESS_ACK", "MIGRATE_DST_SEAMLESS_NACK",
    ];

    private static readonly string[] s_mainClient =
    [
        "CLIENT_INFO", "MIGRATE_CONNECTED", "MIGRATE_CONNECT_ERROR", "ATTACH_CHANNELS", "MOUSE_MODE_REQUEST", "AGENT_START",
        "AGENT_DATA", "AGENT_TOKEN", "MIGRATE_END", "MIGRATE_DST_DO_SEAMLESS", "MIGRATE_CONNECTED_SEAMLESS", "QUALITY_INDICATOR",
    ];

    // Inputs numbers jump from 102 (server) and 104 (client) to 111: the gaps are null.
    private static readonly string?[] s_inputsServer = ["INIT", "KEY_MODIFIERS", null, null, null, null, null, null, null, null, "MOUSE_MOTION_ACK"];

    private static readonly string?[] s_inputsClient =
        ["KEY_DOWN", "KEY_UP", "KEY_MODIFIERS", "KEY_SCANCODE", null, null, null, null, null, null, "MOUSE_MOTION", "MOUSE_POSITION", "MOUSE_PRESS", "MOUSE_RELEASE"];

    private static readonly string[] s_cursorServer = ["INIT", "RESET", "SET", "MOVE", "HIDE", "TRAIL", "INVAL_ONE", "INVAL_ALL"];

    private static readonly string[] s_tunnelServer =
        ["INIT", "SERVICE_IP_MAP", "SOCKET_OPEN", "SOCKET_FIN", "SOCKET_CLOSE", "SOCKET_DATA", "SOCKET_CLOSED_ACK", "SOCKET_TOKEN"];

    private static readonly string[] s_tunnelClient =
        ["SERVICE_ADD", "SERVICE_REMOVE", "SOCKET_OPEN_ACK", "SOCKET_OPEN_NACK", "SOCKET_FIN", "SOCKET_CLOSED", "SOCKET_CLOSED_ACK", "SOCKET_DATA", "SOCKET_TOKEN"];

    private static readonly string[] s_linkErrors =
        ["OK", "ERROR", "INVALID_MAGIC", "INVALID_DATA", "VERSION_MISMATCH", "NEED_SECURED", "NEED_UNSECURED", "PERMISSION_DENIED", "BAD_CONNECTION_ID", "CHANNEL_NOT_AVAILABLE"];

    /// <summary>"main", "display", ... or the number.</summary>
    public static string Channel(byte type) => type < s_channels.Length && type > 0 ? s_channels[type] : $"type{type}";

    /// <summary>A SpiceLinkErr's name (protocol.md §1.7), or its number.</summary>
    public static string LinkError(uint error) => error < s_linkErrors.Length ? s_linkErrors[error] : error.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The message's name, or null when it is a channel's own message this table does not name.</summary>
    public static string? Message(byte channel, bool fromClient, ushort type)
    {
        if (type is > 0 and <= 100)
        {
            var common = fromClient ? s_commonClient : s_commonServer;
            return type < common.Length ? common[type] : null;
        }

        string?[]? table = (channel, fromClient) switch
        {
            (Main, false) => s_mainServer,
            (Main, true) => s_mainClient,
            (Tunnel, false) => s_tunnelServer,
            (Tunnel, true) => s_tunnelClient,
            (Inputs, false) => s_inputsServer,
            (Inputs, true) => s_inputsClient,
            (Cursor, false) => s_cursorServer,
            _ => null,
        };
        return table is not null && type >= 101 && type - 101 < table.Length ? table[type - 101] : null;
    }
}
