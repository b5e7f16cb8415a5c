using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Text;

namespace NetWire.Control.Migration;

/// <summary>
/// The state transfer connection between two appliances: the source connects to the target's
/// <c>--incoming tcp:HOST:PORT</c>, sends one state stream (<see cref="Core.State.StateStream"/>)
/// and reads one reply: u8 'K' (adopted) or 'E' (refused), u16 length, UTF-8 text (what was
/// adopted, or why it was refused). The target refuses a bad header as soon as it has read it.
/// </summary>
internal static class MigrationWire
{
    public const byte Accepted = (byte)'K';
    public const byte Refused = (byte)'E';
    public const int MaxReplyText = 4096;

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

    /// <summary>Reads the target's reply.</summary>
    /// <exception cref="InvalidDataException">Not a reply (the peer is not a NetWire target) or cut short.</exception>
    public static async Task<(bool Accepted, string Text)> ReadReplyAsync(Stream stream, CancellationToken cancellationToken)
    {
        var head = new byte[3];
        try
        {
            await stream.ReadExactlyAsync(head, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new InvalidDataException("the target closed the connection without a reply");
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
