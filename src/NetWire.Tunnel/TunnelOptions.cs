namespace NetWire.Tunnel;

/// <summary>Limits and windows of the tunnel channel, server side (protocol.md §6.3 for the originals).</summary>
internal sealed class TunnelOptions
{
    /// <summary>Tunnel sockets per client at once; sent in INIT (max_num_of_sockets). spice-server: 20.</summary>
    public ushort MaxSockets { get; set; } = 20;

    /// <summary>
    /// Largest SOCKET_DATA payload either way; sent in INIT (max_socket_data_size). spice-server
    /// used 2048. 16 KiB carries a loopback transfer in an eighth of the messages and, with the
    /// window below, keeps 512 KiB in flight per socket, about what the gateway's TCP buffer holds.
    /// </summary>
    public int MaxDataSize { get; set; } = 16 * 1024;

    /// <summary>Tokens granted to the client in SOCKET_OPEN (SOCKET_DATA it may send before a SOCKET_TOKEN). spice-server: 80.</summary>
    public uint Window { get; set; } = 32;

    /// <summary>Largest window a client may grant the server in OPEN_ACK; more is clamped (bounds what a socket may send ahead).</summary>
    public uint MaxClientWindow { get; set; } = 1024;

    /// <summary>Services one client may have at once.</summary>
    public int MaxServices { get; set; } = 32;

    /// <summary>Tunnel clients at once (each has its own services and sockets).</summary>
    public int MaxClients { get; set; } = 4;

    /// <summary>How long a guest's SYN waits for the client's OPEN_ACK before the guest gets a RST (slirp: 75 s).</summary>
    public TimeSpan OpenTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Messages the channel may have queued for sending before senders wait.</summary>
    public int SendQueueCapacity { get; set; } = 256;
}
