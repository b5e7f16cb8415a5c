using System.Threading.Channels;

namespace NetWire.Spice.Framing;

/// <summary>
/// One linked SPICE channel's byte stream cut into messages: a receive side that reads one
/// message at a time into a buffer of fixed size, and a bounded send queue drained by
/// <see cref="SendLoopAsync"/>.
/// </summary>
/// <remarks>
/// Limits: a message whose announced size exceeds <see cref="MaxReceiveSize"/> is a protocol
/// violation, detected from the header alone, before any body byte is read or any memory is
/// taken (the CVE-2016-9577 shape: one fixed buffer, no size check). The receive buffer is
/// allocated once per connection. The send queue waits when full (control messages are never
/// dropped); serials for the full header are assigned in send order by the send loop.
/// </remarks>
internal sealed class MessageConnection
{
    private readonly Stream _stream;
    private readonly byte[] _header = new byte[DataHeader.FullLength];
    private readonly byte[] _body;
    private readonly Channel<Outgoing> _sendQueue;

    /// <summary>Next serial for full headers; written only by the send loop.</summary>
    private ulong _sendSerial;

    public MessageConnection(Stream stream, bool miniHeader, int maxReceiveSize, int sendQueueCapacity)
    {
        _stream = stream;
        MiniHeader = miniHeader;
        MaxReceiveSize = maxReceiveSize;
        _body = new byte[maxReceiveSize];
        _sendQueue = Channel.CreateBounded<Outgoing>(new BoundedChannelOptions(sendQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
    }

    /// <summary>True when both directions use the 6-byte mini header.</summary>
    public bool MiniHeader { get; }

    /// <summary>Largest message body accepted from the peer.</summary>
    public int MaxReceiveSize { get; }

    /// <summary>Body of the last message read; valid until the next <see cref="ReadAsync"/>.</summary>
    public ReadOnlySpan<byte> Body => _body.AsSpan(0, LastSize);

    /// <summary>Size of the last message body read.</summary>
    public int LastSize { get; private set; }

    /// <summary>Messages queued and not yet written.</summary>
    public int QueuedMessages => _sendQueue.Reader.CanCount ? _sendQueue.Reader.Count : 0;

    /// <summary>
    /// Reads the next message. Its body is then in <see cref="Body"/>.
    /// </summary>
    /// <exception cref="EndOfStreamException">The peer closed the connection.</exception>
    /// <exception cref="SpiceProtocolException">The announced size is over the limit.</exception>
    public async ValueTask<DataHeader> ReadAsync(CancellationToken cancellationToken)
    {
        var headerLength = DataHeader.LengthFor(MiniHeader);
        await _stream.ReadExactlyAsync(_header.AsMemory(0, headerLength), cancellationToken).ConfigureAwait(false);
        _ = DataHeader.TryParse(_header.AsSpan(0, headerLength), MiniHeader, out var header);
        if (header.Size > (uint)MaxReceiveSize)
        {
            ThrowHelper.Protocol($"message type {header.Type} announces {header.Size} bytes; this channel accepts at most {MaxReceiveSize}");
        }

        LastSize = (int)header.Size;
        if (LastSize > 0)
        {
            await _stream.ReadExactlyAsync(_body.AsMemory(0, LastSize), cancellationToken).ConfigureAwait(false);
        }

        return header;
    }

    /// <summary>Queues a message; waits while the queue is full.</summary>
    /// <exception cref="ChannelClosedException">The connection is shutting down.</exception>
    public ValueTask SendAsync(ushort type, byte[] body, CancellationToken cancellationToken) =>
        _sendQueue.Writer.WriteAsync(new Outgoing(type, body), cancellationToken);

    /// <summary>Queues a message if there is room; false when full or closed.</summary>
    public bool TrySend(ushort type, byte[] body) => _sendQueue.Writer.TryWrite(new Outgoing(type, body));

    /// <summary>No more messages will be queued; the send loop ends after writing what is queued.</summary>
    public void CompleteSending(Exception? reason = null) => _sendQueue.Writer.TryComplete(reason);

    /// <summary>
    /// Writes queued messages until <see cref="CompleteSending"/> or cancellation. Messages
    /// that are queued together go out in one write (one segment with TCP_NODELAY).
    /// </summary>
    public async Task SendLoopAsync(CancellationToken cancellationToken)
    {
        const int BatchBytes = 64 * 1024;
        var headerLength = DataHeader.LengthFor(MiniHeader);
        var buffer = new byte[BatchBytes];
        var reader = _sendQueue.Reader;
        while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var used = 0;
            while (reader.TryPeek(out var next) && (used == 0 || used + headerLength + next.Body.Length <= buffer.Length))
            {
                reader.TryRead(out var message);
                var needed = used + headerLength + message.Body.Length;
                if (needed > buffer.Length)
                {
                    // Only the first message of a batch can be larger than the buffer.
                    Array.Resize(ref buffer, needed);
                }

                // Serials start at 1 and count every message in this direction (protocol.md §2).
                used += new DataHeader(++_sendSerial, message.Type, (uint)message.Body.Length).WriteTo(buffer.AsSpan(used), MiniHeader);
                message.Body.CopyTo(buffer.AsSpan(used));
                used += message.Body.Length;
            }

            await _stream.WriteAsync(buffer.AsMemory(0, used), cancellationToken).ConfigureAwait(false);
            if (buffer.Length > BatchBytes)
            {
                buffer = new byte[BatchBytes];
            }
        }
    }

    private readonly record struct Outgoing(ushort Type, byte[] Body);
}
