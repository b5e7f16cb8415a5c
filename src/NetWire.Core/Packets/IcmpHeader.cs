using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>An ICMP header for IPv4 (RFC 792) as values: what <see cref="IcmpPacket"/> reads, to write.</summary>
/// <param name="Type">The message type.</param>
/// <param name="Code">The code within the type.</param>
/// <param name="RestOfHeader">Bytes 4-7 as one number (see <see cref="Echo"/> for an echo's).</param>
public readonly record struct IcmpHeader(IcmpType Type, byte Code, uint RestOfHeader)
{
    /// <summary>Bytes of header <see cref="WriteTo"/> writes.</summary>
    public static int Length => IcmpPacket.HeaderLength;

    /// <summary>An echo request or reply header.</summary>
    public static IcmpHeader Echo(IcmpType type, ushort identifier, ushort sequenceNumber) =>
        new(type, 0, ((uint)identifier << 16) | sequenceNumber);

    /// <summary>The header of the message <paramref name="message"/>; false when it is shorter than 8 bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out IcmpHeader header)
    {
        if (!IcmpPacket.TryParse(message, out var view))
        {
            header = default;
            return false;
        }

        header = new IcmpHeader(view.Type, view.Code, view.RestOfHeader);
        return true;
    }

    /// <summary>
    /// Writes the header over the first 8 bytes of <paramref name="message"/>, whose data must
    /// already follow it (the whole span is the message), and the checksum over the message.
    /// </summary>
    public void WriteTo(Span<byte> message)
    {
        message[0] = (byte)Type;
        message[1] = Code;
        message[2] = 0;
        message[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], RestOfHeader);
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], Checksum.Compute(message));
    }
}
