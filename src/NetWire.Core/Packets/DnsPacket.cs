using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of a DNS message's header (RFC 1035 4.1.1): id, flags and the four section counts;
/// the sections themselves are <see cref="Body"/>. The gateway forwards DNS without reading
/// it; the header is what logs and tests look at.
/// </summary>
public readonly ref struct DnsPacket
{
    /// <summary>The header: 12 bytes.</summary>
    public const int HeaderLength = 12;

    private readonly ReadOnlySpan<byte> _bytes;

    private DnsPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>ID: matches a response to its query.</summary>
    public ushort Id => BinaryPrimitives.ReadUInt16BigEndian(_bytes);

    /// <summary>The 16 flag bits: QR, Opcode, AA, TC, RD, RA, Z, RCODE.</summary>
    public ushort Flags => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>QR: a response.</summary>
    public bool IsResponse => (_bytes[2] & 0x80) != 0;

    /// <summary>Opcode (0 is a standard query).</summary>
    public int Opcode => (_bytes[2] >> 3) & 0xf;

    /// <summary>RCODE (0 no error, 3 name error).</summary>
    public int ResponseCode => _bytes[3] & 0xf;

    /// <summary>QDCOUNT.</summary>
    public ushort QuestionCount => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>ANCOUNT.</summary>
    public ushort AnswerCount => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>NSCOUNT.</summary>
    public ushort AuthorityCount => BinaryPrimitives.ReadUInt16BigEndian(_bytes[8..]);

    /// <summary>ARCOUNT.</summary>
    public ushort AdditionalCount => BinaryPrimitives.ReadUInt16BigEndian(_bytes[10..]);

    /// <summary>The sections after the header.</summary>
    public ReadOnlySpan<byte> Body => _bytes[HeaderLength..];

    /// <summary>Views <paramref name="message"/> (a UDP payload); false when it is shorter than the header.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out DnsPacket view)
    {
        if (message.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        view = new DnsPacket(message);
        return true;
    }
}
