namespace NetWire.Devices.Pcap;

/// <summary>Where MIGRATE_BEGIN, MIGRATE_BEGIN_SEAMLESS or MIGRATE_SWITCH_HOST sends the client (DstInfo, protocol.md §4.4).</summary>
/// <param name="Host">The target host; null when SWITCH_HOST leaves it out.</param>
/// <param name="Port">Plain port.</param>
/// <param name="SecurePort">TLS port; null for 0xFFFF (none).</param>
/// <param name="Subject">The certificate subject, or null.</param>
public sealed record SpiceDestination(string? Host, int Port, int? SecurePort, string? Subject);

/// <summary>One SPICE message or link step seen in a conversation.</summary>
/// <param name="TimeNs">Capture time of the segment that completed it, ns since the epoch.</param>
/// <param name="FromClient">Client to server.</param>
/// <param name="Type">Message type; 0 for a link step.</param>
/// <param name="Name">The message's name (protocol.md §3, §4, §6, §1.9), <c>link</c>, <c>link-reply</c>, <c>ticket</c>, <c>link-result</c>, or <c>CHANNEL n</c> for a channel's own message not named here.</param>
/// <param name="Size">Body bytes.</param>
/// <param name="Detail">What the body says, for the messages decoded (link, INIT, MIGRATE_BEGIN, SWITCH_HOST, ...), else null.</param>
/// <param name="Destination">MIGRATE_BEGIN's, MIGRATE_BEGIN_SEAMLESS's or SWITCH_HOST's target, when well formed.</param>
public sealed record SpiceMessage(long TimeNs, bool FromClient, ushort Type, string Name, int Size, string? Detail, SpiceDestination? Destination = null);

/// <summary>One TCP connection carrying a SPICE channel.</summary>
public sealed class SpiceConversation
{
    /// <summary>1-based, in order of the first segment.</summary>
    public required int Index { get; init; }

    /// <summary>Client address and port.</summary>
    public required string Client { get; init; }

    /// <summary>Server address and port.</summary>
    public required string Server { get; init; }

    /// <summary>The server's TCP port.</summary>
    public int ServerPort { get; init; }

    /// <summary>When its first segment was captured.</summary>
    public long FirstNs { get; init; }

    /// <summary>Channel type from SpiceLinkMess (protocol.md §1.8); 0 until read.</summary>
    public byte ChannelType { get; set; }

    /// <summary>Channel id.</summary>
    public byte ChannelId { get; set; }

    /// <summary>SpiceLinkMess connection_id: 0 for a new main channel, the session id otherwise (also a main channel migrating in).</summary>
    public uint ConnectionId { get; set; }

    /// <summary>Session id from the server's MAIN INIT, on main channels.</summary>
    public uint? SessionId { get; set; }

    /// <summary>The SpiceLinkReply error, once read.</summary>
    public uint? ReplyError { get; set; }

    /// <summary>The link result after authentication, once read.</summary>
    public uint? LinkResult { get; set; }

    /// <summary>Client to server messages use the mini header (the server offered MINI_HEADER).</summary>
    public bool ClientMini { get; set; }

    /// <summary>Server to client messages use the mini header (the client offered MINI_HEADER).</summary>
    public bool ServerMini { get; set; }

    /// <summary>Every link step and message, in capture order.</summary>
    public List<SpiceMessage> Messages { get; } = [];

    /// <summary>Why decoding stopped (bad magic, an impossible size, a gap in the TCP stream), or null.</summary>
    public string? Problem { get; set; }

    /// <summary>"main:0", "display:0", ...</summary>
    public string Channel => $"{SpiceNames.Channel(ChannelType)}:{ChannelId}";

    /// <summary>A main channel linked with a session id: a client migrating in (protocol.md §5.1 step 3).</summary>
    public bool IsMigrationTarget => ChannelType == SpiceNames.Main && ConnectionId != 0;
}

/// <summary>A step of one client's migration (protocol.md §5.1, §5.2).</summary>
/// <param name="TimeNs">Capture time.</param>
/// <param name="Event">
/// MIGRATE_BEGIN, MIGRATE_BEGIN_SEAMLESS, <c>target link CHANNEL</c>, MIGRATE_DST_DO_SEAMLESS,
/// MIGRATE_DST_SEAMLESS_ACK/NACK, MIGRATE_CONNECTED, MIGRATE_CONNECTED_SEAMLESS,
/// MIGRATE_CONNECT_ERROR, MIGRATE_END, MIGRATE_CANCEL, MIGRATE_SWITCH_HOST, <c>client MIGRATE_END</c>,
/// <c>target INIT</c>, <c>new session link</c>, <c>new session INIT</c>.
/// </param>
/// <param name="Conversation">The conversation it was seen on.</param>
/// <param name="Direction"><c>S&gt;C</c> or <c>C&gt;S</c> on that conversation.</param>
/// <param name="Detail">Host and ports, link result, session id; empty when there is nothing to add.</param>
public sealed record SpiceMigrationEvent(long TimeNs, string Event, int Conversation, string Direction, string Detail);

/// <summary>One client's migration: from a source main channel's MIGRATE_BEGIN to the client running on the target.</summary>
public sealed class SpiceMigration
{
    /// <summary>The source's main channel conversation.</summary>
    public required int Source { get; init; }

    /// <summary>The session the client had on the source.</summary>
    public required uint SessionId { get; init; }

    /// <summary>Where MIGRATE_BEGIN sent the client.</summary>
    public SpiceDestination? Destination { get; set; }

    /// <summary>The main channel on the target: linked with the session id, or the new session after SWITCH_HOST.</summary>
    public int? Target { get; set; }

    /// <summary>
    /// <c>semi-seamless</c> (MIGRATE_END), <c>seamless</c> (MIGRATE_CONNECTED_SEAMLESS then MIGRATE_END),
    /// <c>switch-host</c>, <c>cancelled</c>, or <c>incomplete</c> when the capture ends first.
    /// </summary>
    public string Kind { get; set; } = "incomplete";

    /// <summary>The steps in time order.</summary>
    public List<SpiceMigrationEvent> Events { get; } = [];

    /// <summary>
    /// The client's switch: from the source's MIGRATE_END (or SWITCH_HOST) to the target's INIT
    /// on the main channel that carries the client on (null when either is missing).
    /// </summary>
    public TimeSpan? SwitchTime { get; set; }

    /// <summary>From MIGRATE_BEGIN to that INIT.</summary>
    public TimeSpan? Duration { get; set; }
}

/// <summary>What <see cref="SpiceInspector"/> found.</summary>
public sealed class SpiceSummary
{
    /// <summary>The first frame's time, the origin of every relative time shown.</summary>
    public long FirstNs { get; set; }

    /// <summary>SPICE conversations in order.</summary>
    public List<SpiceConversation> Conversations { get; } = [];

    /// <summary>Client migrations, in order of their MIGRATE_BEGIN.</summary>
    public List<SpiceMigration> Migrations { get; } = [];
}
