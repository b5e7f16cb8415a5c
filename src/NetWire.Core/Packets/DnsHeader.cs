using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A DNS header (RFC 1035 4.1.1) as values: what <see cref="DnsPacket"/> reads, to write.</summary>
/// <param name="Id">ID.</param>
/// <param name="Flags">QR, Opcode, AA, TC, RD, RA, Z and RCODE as one number.</param>
/// <param name="QuestionCount">QDCOUNT.</param>
/// <param name="AnswerCount">ANCOUNT.</param>
/// <param name="AuthorityCount">NSCOUNT.</param>
/// <param name="AdditionalCount">ARCOUNT.</param>
public readonly record struct DnsHeader(ushort Id, ushort Flags, ushort QuestionCount, ushort AnswerCount, ushort AuthorityCount, ushort AdditionalCount)
{
    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public static int Length => DnsPacket.HeaderLength;

    /// <summary>The header of <paramref name="message"/>; false when it is shorter than 12 bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out DnsHeader header)
    {
        if (!DnsPacket.TryParse(message, out var view))
        {
            header = default;
            return false;
        }

        header = new DnsHeader(view.Id, view.Flags, view.QuestionCount, view.AnswerCount, view.AuthorityCount, view.AdditionalCount);
        return true;
    }

    /// <summary>Writes the 12 bytes to the start of <paramref name="message"/>.</summary>
    public void WriteTo(Span<byte> message)
    {
        BinaryPrimitives.WriteUInt16BigEndian(message, Id);
        BinaryPrimitives.WriteUInt16BigEndian(message[2..], Flags);
        BinaryPrimitives.WriteUInt16BigEndian(message[4..], QuestionCount);
        BinaryPrimitives.WriteUInt16BigEndian(message[6..], AnswerCount);
        BinaryPrimitives.WriteUInt16BigEndian(message[8..], AuthorityCount);
        BinaryPrimitives.WriteUInt16BigEndian(message[10..DnsPacket.HeaderLength], AdditionalCount);
    }
}
