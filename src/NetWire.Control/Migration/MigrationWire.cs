using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace NetWire.Control.Migration;

/// <summary>
/// The state transfer connection between two appliances: the source connects to the target's
/// <c>--incoming tcp:HOST:PORT</c>, sends one state stream (<see cref="Core.State.StateStream"/>)
/// and reads one reply: u8 'K' (adopted) or 'E' (refused), u16 length, UTF-8 text (what was
/// adopted, or why it was refused). The target refuses a bad header as soon as it has read it.
/// </summary>
/// <remarks>
/// A stream with handover sections (live flows) takes three more steps (docs/migration.md,
/// "Handover"): the target answers 'P' (prepared: u32 length, then per handover section u8 name
/// length, name, u32 length, what it refuses of it) and applies nothing yet; the source lets go
/// of the flows and sends 'C' (or 'A' to withdraw; the target then applies nothing); the target
/// applies the stream and answers 'K' or 'E' as above; the source lifts its network lock and
/// sends 'U'; the target starts the flows.
/// </remarks>
internal static class MigrationWire
{
    public const byte Accepted = (byte)'K';
    public const byte Refused = (byte)'E';
    public const byte Prepared = (byte)'P';
    public const byte Commit = (byte)'C';
    public const byte Abort = (byte)'A';
    public const byte Unlocked = (byte)'U';
    public const int MaxReplyText = 4096;

    /// <summary>Most bytes of refusals a prepared reply carries.</summary>
    public const int MaxPrepared = 16 << 20;

    /// <summary>Longest a handover step waits on its own thread for the peer's next message (<see cref="WaitReadable"/>).</summary>
    public static readonly TimeSpan PollLimit = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Waits in poll(2) on the calling thread, up to <see cref="PollLimit"/>, until the peer's next
    /// message has arrived on <paramref name="socket"/> (null: over TLS, where bytes may wait in
    /// the TLS stream's buffer instead; nothing is waited for). The read that follows then completes
    /// at once: an asynchronous read would end with the socket engine's thread handing the
    /// continuation to the thread pool, whose workers sleep (the runtimeconfig's spin limit 0), one
    /// more wake-up per step while the source holds its flows locked (docs/performance.md). The
    /// handover is lockstep, so the next message is never in a buffer already. Past the limit the
    /// asynchronous read waits as before, with its timeout and cancellation.
    /// </summary>
    public static void WaitReadable(Socket? socket)
    {
        if (socket is null)
        {
            return;
        }

        try
        {
            _ = socket.Poll(PollLimit, SelectMode.SelectRead);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The read that follows reports it.
        }
    }

    /// <summary>Parses QEMU's <c>tcp:HOST:PORT</c> migration URI (HOST an address or a name; IPv6 in brackets).</summary>
    /// <exception cref="FormatException">Any other form.</exception>
    public static (string Host, int Port) ParseUri(string uri)
    {
        if (!uri.StartsWith("tcp:", StringComparison.Ordinal))
        {
            throw new FormatException($"migration URI '{uri}': only tcp:HOST:PORT is supported");
        }

        var rest = uri["tcp:".Length..];
        var colon = rest.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(rest.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new FormatException($"migration URI '{uri}': use tcp:HOST:PORT with a port 1 to 65535");
        }

        var host = rest[..colon].Trim('[', ']');
        if (host.Length == 0)
        {
            throw new FormatException($"migration URI '{uri}': no host");
        }

        return (host, port);
    }

    /// <summary>Parses <c>--incoming tcp:ADDRESS:PORT</c> (an IP address, port 0 for any free one).</summary>
    public static IPEndPoint ParseIncoming(string uri)
    {
        if (!uri.StartsWith("tcp:", StringComparison.Ordinal))
        {
            throw new FormatException($"--incoming '{uri}': only tcp:ADDRESS:PORT is supported");
        }

        var rest = uri["tcp:".Length..];
        var colon = rest.LastIndexOf(':');
        if (colon <= 0
            || !IPAddress.TryParse(rest[..colon].Trim('[', ']'), out var address)
            || !int.TryParse(rest.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port > 65535)
        {
            throw new FormatException($"--incoming '{uri}': use tcp:ADDRESS:PORT with an IP address");
        }

        return new IPEndPoint(address, port);
    }

    public static byte[] BuildReply(bool accepted, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > MaxReplyText)
        {
            bytes = bytes.AsSpan(0, MaxReplyText).ToArray();
        }

        var reply = new byte[3 + bytes.Length];
        reply[0] = accepted ? Accepted : Refused;
        BinaryPrimitives.WriteUInt16LittleEndian(reply.AsSpan(1), (ushort)bytes.Length);
        bytes.CopyTo(reply, 3);
        return reply;
    }

    /// <summary>The prepared reply: what the target refuses of each handover section.</summary>
    public static byte[] BuildPrepared(IReadOnlyList<(string Name, ReadOnlyMemory<byte> Refusals)> sections)
    {
        using var body = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var (name, refusals) in sections)
        {
            body.WriteByte((byte)name.Length);
            body.Write(Encoding.ASCII.GetBytes(name));
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)refusals.Length);
            body.Write(length);
            body.Write(refusals.Span);
        }

        var reply = new byte[5 + body.Length];
        reply[0] = Prepared;
        BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(1), (uint)body.Length);
        body.GetBuffer().AsSpan(0, (int)body.Length).CopyTo(reply.AsSpan(5));
        return reply;
    }

    /// <summary>Reads the target's reply: 'K' or 'E' with its text, or 'P' with the refusals by section name.</summary>
    /// <exception cref="InvalidDataException">Not a reply (the peer is not a NetWire target) or cut short.</exception>
    public static async Task<MigrationReply> ReadAnyReplyAsync(Stream stream, CancellationToken cancellationToken)
    {
        var kind = new byte[1];
        await ReadAsync(stream, kind, "the target closed the connection without a reply", cancellationToken).ConfigureAwait(false);
        if (kind[0] != Prepared)
        {
            var (accepted, text) = await ReadTextReplyAsync(stream, kind[0], cancellationToken).ConfigureAwait(false);
            return new MigrationReply(accepted ? Accepted : Refused, text, null);
        }

        var lengthBytes = new byte[4];
        await ReadAsync(stream, lengthBytes, "the target's prepared reply is cut short", cancellationToken).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
        if (length > MaxPrepared)
        {
            throw new InvalidDataException($"the target's prepared reply announces {length} bytes, at most {MaxPrepared}");
        }

        var body = new byte[length];
        await ReadAsync(stream, body, "the target's prepared reply is cut short", cancellationToken).ConfigureAwait(false);
        var refusals = new Dictionary<string, ReadOnlyMemory<byte>>(StringComparer.Ordinal);
        var at = 0;
        while (at < body.Length)
        {
            var nameLength = body[at++];
            if (at + nameLength + 4 > body.Length)
            {
                throw new InvalidDataException("the target's prepared reply is malformed");
            }

            var name = Encoding.ASCII.GetString(body, at, nameLength);
            at += nameLength;
            var size = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(at));
            at += 4;
            if (size > (uint)(body.Length - at))
            {
                throw new InvalidDataException("the target's prepared reply is malformed");
            }

            refusals[name] = body.AsMemory(at, (int)size);
            at += (int)size;
        }

        return new MigrationReply(Prepared, string.Empty, refusals);
    }

    /// <summary>Reads the target's reply.</summary>
    /// <exception cref="InvalidDataException">Not a reply (the peer is not a NetWire target) or cut short.</exception>
    public static async Task<(bool Accepted, string Text)> ReadReplyAsync(Stream stream, CancellationToken cancellationToken)
    {
        var kind = new byte[1];
        await ReadAsync(stream, kind, "the target closed the connection without a reply", cancellationToken).ConfigureAwait(false);
        return await ReadTextReplyAsync(stream, kind[0], cancellationToken).ConfigureAwait(false);
    }

    private static async Task ReadAsync(Stream stream, byte[] buffer, string cutShort, CancellationToken cancellationToken)
    {
        try
        {
            await stream.ReadExactlyAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException(cutShort);
        }
    }

    private static async Task<(bool Accepted, string Text)> ReadTextReplyAsync(Stream stream, byte kind, CancellationToken cancellationToken)
    {
        var head = new byte[3];
        head[0] = kind;
        try
        {
            await stream.ReadExactlyAsync(head.AsMemory(1), cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the target's reply is cut short");
        }

        if (head[0] is not (Accepted or Refused))
        {
            throw new InvalidDataException($"the target's reply starts with byte 0x{head[0]:X2}: not a NetWire migration target");
        }

        var length = BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(1));
        if (length > MaxReplyText)
        {
            throw new InvalidDataException($"the target's reply announces {length} bytes of text, at most {MaxReplyText}");
        }

        var text = new byte[length];
        try
        {
            await stream.ReadExactlyAsync(text, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the target's reply is cut short");
        }

        return (head[0] == Accepted, Encoding.UTF8.GetString(text));
    }
}

/// <summary>A reply of the target: <see cref="MigrationWire.Accepted"/>, <see cref="MigrationWire.Refused"/> (with text) or <see cref="MigrationWire.Prepared"/> (with refusals).</summary>
internal sealed record MigrationReply(byte Kind, string Text, IReadOnlyDictionary<string, ReadOnlyMemory<byte>>? Refusals);
