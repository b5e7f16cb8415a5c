namespace NetWire.Spice.Framing;

/// <summary>
/// The server side of a channel's ACK window (protocol.md §3.3): SET_ACK{generation, window}, the
/// client's ACK_SYNC(generation), then one ACK per <c>window</c> messages received. The server
/// stops sending while more than 2 x window messages are unacknowledged. Channels created
/// with acks on use it (the tunnel); the main channel does not, like spice-server.
/// </summary>
/// <remarks>Not thread-safe: the owning channel's send and receive loops call it under the channel's lock.</remarks>
internal sealed class AckWindow
{
    /// <summary>spice-server's default window.</summary>
    public const uint DefaultWindow = 20;

    private uint _clientGeneration;
    private long _unacked;

    public AckWindow(uint window = DefaultWindow) => Window = window;

    /// <summary>Messages per ACK.</summary>
    public uint Window { get; }

    /// <summary>The generation of the last SET_ACK (first is 1).</summary>
    public uint Generation { get; private set; }

    /// <summary>Messages sent and not yet acknowledged.</summary>
    public long Unacked => _unacked;

    /// <summary>False while more than 2 x window messages are unacknowledged.</summary>
    public bool CanSend => _unacked <= 2L * Window;

    /// <summary>Starts a new generation; the caller sends SET_ACK{Generation, Window}.</summary>
    public uint NextGeneration()
    {
        Generation++;
        return Generation;
    }

    /// <summary>One message went out.</summary>
    public void OnSent() => _unacked++;

    /// <summary>ACK_SYNC from the client.</summary>
    public void OnAckSync(uint generation) => _clientGeneration = generation;

    /// <summary>ACK from the client; counts only when its last ACK_SYNC matched the current generation.</summary>
    public void OnAck()
    {
        if (_clientGeneration == Generation && Generation != 0)
        {
            _unacked = Math.Max(0, _unacked - Window);
        }
    }
}
