using System.Net.Sockets;
using System.Threading.Channels;
using NetWire.Core.Net;
using NetWire.Spice.Framing;

namespace NetWire.Tunnel;

/// <summary>
/// The byte relay of one tunnel socket, the same on both sides: a local stream socket (the
/// server's end of a socket pair towards the gateway, or the client's real connection to the
/// service) against SOCKET_DATA / SOCKET_FIN / SOCKET_TOKEN on the channel.
/// </summary>
/// <remarks>
/// How this works (protocol.md §6.7, tokens count SOCKET_DATA messages, not bytes):
/// <code>
///   local socket ──read ≤ max data──▶ SOCKET_DATA   one token each; none left: stop reading
///                                                   (the kernel buffer fills, the TCP window closes)
///   local socket ◀──write──── inbound queue ◀──── SOCKET_DATA from the peer (at most the window we
///                                                  granted; more is a token violation)
///                 every window/4 messages written, SOCKET_TOKEN gives them back
/// </code>
/// Local EOF becomes SOCKET_FIN; the peer's SOCKET_FIN becomes shutdown(SHUT_WR) once the inbound
/// queue is written. Tokens the peer returns may never make more than it first granted (the real
/// server let a peer inflate its window). After local EOF the local socket is watched for a full
/// close (POLLHUP), so a guest or service that went away while the other side is idle does not
/// keep the socket forever. Memory per socket: at most window x max data size inbound, one read
/// buffer outbound.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "RunAsync disposes the lifetime; a SemaphoreSlim without AvailableWaitHandle owns no handle.")]
internal sealed class TunnelRelay
{
    private static readonly TimeSpan s_hangupPoll = TimeSpan.FromMilliseconds(250);

    private readonly ushort _id;
    private readonly Socket _socket;
    private readonly MessageConnection _connection;
    private readonly Ids _ids;
    private readonly int _maxData;
    private readonly uint _inWindow;
    private readonly uint _outGrant;
    private readonly int _returnBatch;
    private readonly Channel<byte[]> _inbound;
    private readonly SemaphoreSlim _tokensArrived = new(0, 1);
    private readonly ChannelLifetime _lifetime;

    /// <summary>Guards the token counts and <see cref="_peerFin"/>; receive loop and pumps take it.</summary>
    private readonly Lock _gate = new();

    /// <summary>SOCKET_DATA we may still send (the peer's grant minus what we spent, plus returns).</summary>
    private uint _outTokens;

    /// <summary>SOCKET_DATA received from the peer and not yet given back with SOCKET_TOKEN.</summary>
    private uint _unreturned;

    /// <summary>The peer sent SOCKET_FIN (or closed).</summary>
    private bool _peerFin;

    /// <summary>The peer closed: once the inbound queue is written, everything ends.</summary>
    private bool _closeAfterDrain;

    /// <summary>The inbound pump has written everything and shut the local socket for writing.</summary>
    private bool _inboundDone;

    private long _bytesOut;
    private long _bytesIn;

    /// <param name="inWindow">Tokens we granted the peer: its SOCKET_DATA in flight towards us.</param>
    /// <param name="outGrant">Tokens the peer granted us.</param>
    public TunnelRelay(ushort id, Socket socket, MessageConnection connection, Ids ids, int maxData, uint inWindow, uint outGrant)
    {
        _id = id;
        _socket = socket;
        _connection = connection;
        _ids = ids;
        _maxData = maxData;
        _inWindow = inWindow;
        _outGrant = outGrant;
        _outTokens = outGrant;
        _returnBatch = (int)Math.Max(1, inWindow / 4);
        _inbound = Channel.CreateBounded<byte[]>(new BoundedChannelOptions((int)Math.Max(1, inWindow)) { SingleReader = true, SingleWriter = true });
        _lifetime = new ChannelLifetime((_, _) =>
        {
            _inbound.Writer.TryComplete();
            Close();
        });
    }

    /// <summary>Message ids one side sends.</summary>
    public readonly record struct Ids(ushort Data, ushort Fin, ushort Token);

    /// <summary>The server's ids.</summary>
    public static Ids ServerIds => new(TunnelMessages.SocketData, TunnelMessages.SocketFin, TunnelMessages.SocketToken);

    /// <summary>The client's ids.</summary>
    public static Ids ClientIds => new(TunnelMessages.ClientSocketData, TunnelMessages.ClientSocketFin, TunnelMessages.ClientSocketToken);

    /// <summary>Bytes read from the local socket and sent.</summary>
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    /// <summary>Bytes received and written to the local socket.</summary>
    public long BytesIn => Interlocked.Read(ref _bytesIn);

    /// <summary>Tokens we hold now (for tests and Describe).</summary>
    public uint OutTokens
    {
        get
        {
            lock (_gate)
            {
                return _outTokens;
            }
        }
    }

    /// <summary>SOCKET_DATA from the peer; false is a token violation or data after its FIN.</summary>
    public bool OnData(ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            if (_peerFin || _unreturned >= _inWindow)
            {
                return false;
            }

            if (!_inbound.Writer.TryWrite(data.ToArray()))
            {
                // Only after Abort: the queue holds at most _inWindow, which the check above bounds.
                return true;
            }

            _unreturned++;
            return true;
        }
    }

    /// <summary>SOCKET_FIN from the peer; false when it already sent one.</summary>
    public bool OnFin()
    {
        lock (_gate)
        {
            if (_peerFin)
            {
                return false;
            }

            _peerFin = true;
            _inbound.Writer.TryComplete();
            return true;
        }
    }

    /// <summary>SOCKET_TOKEN from the peer; false when it would hold more than it first granted.</summary>
    public bool OnTokens(uint count)
    {
        lock (_gate)
        {
            if ((ulong)_outTokens + count > _outGrant)
            {
                return false;
            }

            _outTokens += count;
        }

        Wake();
        return true;
    }

    /// <summary>
    /// The peer closed its end (SOCKET_CLOSED / SOCKET_CLOSE): what it sent before is still written
    /// to the local socket, then both pumps end and the local socket closes.
    /// </summary>
    public void OnPeerClosed()
    {
        bool drained;
        lock (_gate)
        {
            _closeAfterDrain = true;
            _peerFin = true;
            _inbound.Writer.TryComplete();
            drained = _inboundDone;
        }

        if (drained)
        {
            Abort();
        }
    }

    /// <summary>Ends both pumps now and closes the local socket (the channel went away); the first call does it, later ones find it done.</summary>
    public void Abort() => _lifetime.Abort(EndReason.Stopping, new OperationCanceledException("tunnel socket relay aborted"));

    /// <summary>Runs both directions; true when both ended with a FIN (a clean close), false on any failure.</summary>
    public async Task<bool> RunAsync()
    {
        var token = _lifetime.Token;
        var outbound = OutboundAsync(token);
        var inbound = InboundAsync(token);
        var first = await Task.WhenAny(outbound, inbound).ConfigureAwait(false);
        if (!await first.ConfigureAwait(false))
        {
            Abort();
        }
        else if (first == outbound)
        {
            // Our FIN is sent; the other direction may stay open (half-close) until the local
            // socket is closed altogether.
            while (!inbound.IsCompleted)
            {
                await Task.WhenAny(inbound, Task.Delay(s_hangupPoll, CancellationToken.None)).ConfigureAwait(false);
                if (!inbound.IsCompleted && SocketPair.PeerClosed(_socket))
                {
                    Abort();
                }
            }
        }

        var clean = await outbound.ConfigureAwait(false) & await inbound.ConfigureAwait(false);
        _lifetime.Dispose();
        return clean;
    }

    /// <summary>Disposes the local socket after a run (the slot is being freed).</summary>
    public void Close()
    {
        try
        {
            _socket.Dispose();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void Wake()
    {
        if (_tokensArrived.CurrentCount == 0)
        {
            try
            {
                _tokensArrived.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    private bool TakeToken()
    {
        lock (_gate)
        {
            if (_outTokens == 0)
            {
                return false;
            }

            _outTokens--;
            return true;
        }
    }

    private async Task<bool> OutboundAsync(CancellationToken cancellationToken)
    {
        var buffer = new byte[_maxData];
        try
        {
            while (true)
            {
                while (!TakeToken())
                {
                    await _tokensArrived.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                var read = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    await _connection.SendAsync(_ids.Fin, TunnelMessages.BuildId(_id), cancellationToken).ConfigureAwait(false);
                    return true;
                }

                Interlocked.Add(ref _bytesOut, read);
                await _connection.SendAsync(_ids.Data, TunnelMessages.BuildData(_id, buffer.AsSpan(0, read)), cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (IsEnd(ex))
        {
            return false;
        }
    }

    private async Task<bool> InboundAsync(CancellationToken cancellationToken)
    {
        var reader = _inbound.Reader;
        var consumed = 0;
        try
        {
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                while (reader.TryRead(out var chunk))
                {
                    var sent = 0;
                    while (sent < chunk.Length)
                    {
                        sent += await _socket.SendAsync(chunk.AsMemory(sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                    }

                    Interlocked.Add(ref _bytesIn, chunk.Length);
                    if (++consumed >= _returnBatch)
                    {
                        lock (_gate)
                        {
                            _unreturned -= (uint)consumed;
                        }

                        await _connection.SendAsync(_ids.Token, TunnelMessages.BuildIdTokens(_id, (uint)consumed), cancellationToken).ConfigureAwait(false);
                        consumed = 0;
                    }
                }
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return false;
            }

            _socket.Shutdown(SocketShutdown.Send);
            bool close;
            lock (_gate)
            {
                close = _closeAfterDrain;
                _inboundDone = true;
            }

            if (close)
            {
                Abort();
            }

            return true;
        }
        catch (Exception ex) when (IsEnd(ex))
        {
            return false;
        }
    }

    /// <summary>A pump's socket or the channel failed, or the relay was aborted under it.</summary>
    private static bool IsEnd(Exception ex) => IoErrors.IsIoFailure(ex) || ChannelLifetime.IsAbortEcho(ex);
}
