using System.Net;
using NetWire.Spice.Link;

namespace NetWire.Spice;

/// <summary>Settings of <see cref="SpiceServer"/>; every limit lives here.</summary>
internal sealed class SpiceServerOptions
{
    /// <summary>The default SPICE port, as QEMU users know it.</summary>
    public const int DefaultPort = 5930;

    /// <summary>
    /// The plaintext port (<c>--spice-addr</c>, <c>--spice-port</c>); default 127.0.0.1:5930;
    /// null for none (a TLS port only).
    /// </summary>
    public IPEndPoint? EndPoint { get; set; } = new(IPAddress.Loopback, DefaultPort);

    /// <summary>The TLS port (<c>--tls-port</c>), or null for none; needs <see cref="Tls"/>.</summary>
    public IPEndPoint? TlsEndPoint { get; set; }

    /// <summary>The certificate and cipher suites of the TLS port (<c>--x509-dir</c>, <c>--tls-ciphers</c>).</summary>
    public NetWire.Core.Tls.TlsSettings? Tls { get; set; }

    /// <summary>Which channels must link over TLS or plaintext (<c>--tls-channel</c>, <c>--plaintext-channel</c>).</summary>
    public ChannelSecurity ChannelSecurity { get; set; } = ChannelSecurity.Open;

    /// <summary>
    /// Time a connection has from accept to its link result, the TLS handshake included. A
    /// client that sends nothing, or dribbles its link message a byte at a time, is dropped
    /// when it runs out. A real client needs two round trips after its connect, and one or
    /// two more for a TLS handshake.
    /// </summary>
    public TimeSpan LinkTimeout { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Connections that may be in the link stage at once. One more evicts the oldest that has
    /// not sent a whole link message (else the oldest): a flood of silent connections is
    /// reclaimed, never the newest client refused.
    /// </summary>
    public int MaxPendingLinks { get; set; } = 1024;

    /// <summary>Main channel sessions at once; a link beyond it gets ERROR.</summary>
    public int MaxSessions { get; set; } = 64;

    /// <summary>How often the main channel sends PING; zero turns pings off.</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Sent in MAIN_NAME to clients with NAME_AND_UUID.</summary>
    public string Name { get; set; } = "netwire";

    /// <summary>Sent in MAIN_UUID to clients with NAME_AND_UUID.</summary>
    public Guid Uuid { get; set; } = Guid.NewGuid();

    /// <summary>Messages a channel may have queued for sending before senders wait.</summary>
    public int SendQueueCapacity { get; set; } = 128;

    /// <summary>
    /// The main channel caps NetWire serves (protocol.md §1.4): SEMI_SEAMLESS_MIGRATE only, so
    /// spice-gtk never takes the seamless path (protocol.md §5.2).
    /// </summary>
    public uint MainChannelCaps { get; set; } = 1u << Link.SpiceCaps.MainSemiSeamlessMigrate;

    /// <summary>
    /// How long a client migrating in may stay parked without its MIGRATE_END once the appliance
    /// state is adopted (or once it linked, when that is later); then it is dropped (spice-server
    /// has no such limit). Before the state arrives it waits without one, as with spice-server:
    /// a whole-VM migration runs QEMU's migration first (docs/migration.md).
    /// </summary>
    public TimeSpan MigrationTargetTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Channels other than main that NetWire serves, listed in CHANNELS_LIST. Only channels
    /// that really open belong here: spice-gtk can crash at migration over announced channels
    /// the application never opened.
    /// </summary>
    public IList<ISpiceChannelService> Channels { get; } = [];

    /// <summary>The clock for link timeouts, pings, expiry and multimedia time.</summary>
    public TimeProvider Time { get; set; } = TimeProvider.System;
}

/// <summary>A non-main channel the server serves (the tunnel channel plugs in here).</summary>
internal interface ISpiceChannelService
{
    /// <summary>Channel type.</summary>
    SpiceChannelType Type { get; }

    /// <summary>Channel instance id.</summary>
    byte Id { get; }

    /// <summary>The channel caps advertised in the link reply.</summary>
    uint[] ChannelCaps { get; }

    /// <summary>Runs a linked channel until it ends; owns <paramref name="stream"/>.</summary>
    Task RunAsync(Stream stream, SpiceLinkMess link, Channels.Main.SpiceSession session, CancellationToken cancellationToken);
}
