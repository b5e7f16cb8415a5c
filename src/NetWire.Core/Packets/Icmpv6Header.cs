using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>An ICMPv6 header (RFC 4443 2.1) as values: what <see cref="Icmpv6Packet"/> reads, to write.</summary>
/// <param name="Type">The message type.</param>
/// <param name="Code">The code within the type.</param>
/// <param name="RestOfHeader">Bytes 4-7 as one number (see <see cref="Echo"/> for an echo's).</param>
public readonly record struct Icmpv6Header(Icmpv6Type Type, byte Code, uint RestOfHeader)
{
    /// <summary>Bytes of header <see cref="WriteTo"/> writes.</summary>
    public static int Length => Icmpv6Packet.HeaderLength;

    /// <summary>An echo request or reply header.</summary>
    public static Icmpv6Header Echo(Icmpv6Type type, ushort identifier, ushort sequenceNumber) =>
        new(type, 0, ((uint)identifier << 16) | sequenceNumber);

    /// <summary>The header of the message <paramref name="message"/>; false when it is shorter than 8 bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out Icmpv6Header header)
    {
        if (!Icmpv6Packet.TryParse(message, out var view))
        {
            header = default;
            return false;
        }

        header = new Icmpv6Header(view.Type, view.Code, view.RestOfHeader);
        return true;
    }

    /// <summary>
    /// Writes the header over the first 8 bytes of <paramref name="message"/>, whose data must
    /// already follow it (the whole span is the message), and the checksum over the message and
    /// <paramref name="pseudoHeader"/> (RFC 4443 2.3).
    /// </summary>
    public void WriteTo(Span<byte> message, PseudoHeader pseudoHeader)
    {
        message[0] = (byte)Type;
        message[1] = Code;
        message[2] = 0;
        message[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(message[4..], RestOfHeader);
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], pseudoHeader.Compute(message));
    }
}
