using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// A view of an ICMP message for IPv4 (RFC 792): type, code, checksum, the four bytes of the
/// rest of the header (echo identifier and sequence number; or the next-hop MTU, a pointer, a
/// gateway address), and the data after them: an echo's payload, or the start of the packet an
/// error is about (<see cref="TryGetQuotedPacket"/>).
/// </summary>
public readonly ref struct IcmpPacket
{
    /// <summary>Type, code, checksum and the rest of the header: 8 bytes.</summary>
    public const int HeaderLength = 8;

    private readonly ReadOnlySpan<byte> _bytes;

    private IcmpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The whole message.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>The message type.</summary>
    public IcmpType Type => (IcmpType)_bytes[0];

    /// <summary>The code within the type.</summary>
    public byte Code => _bytes[1];

    /// <summary>The checksum field.</summary>
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);

    /// <summary>Bytes 4-7 as one number, whatever the type makes of them.</summary>
    public uint RestOfHeader => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);

    /// <summary>An echo's identifier (bytes 4-5).</summary>
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_bytes[4..]);

    /// <summary>An echo's sequence number (bytes 6-7).</summary>
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>A "fragmentation needed" error's next-hop MTU (RFC 1191 4; bytes 6-7).</summary>
    public ushort NextHopMtu => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);

    /// <summary>A parameter problem's pointer to the offending byte (byte 4).</summary>
    public byte Pointer => _bytes[4];

    /// <summary>The data after the header: an echo's payload, an error's quoted packet.</summary>
    public ReadOnlySpan<byte> Data => _bytes[HeaderLength..];

    /// <summary>An error message (destination unreachable, source quench, redirect, time exceeded, parameter problem), which quotes a packet.</summary>
    public bool IsError => Type is IcmpType.DestinationUnreachable or IcmpType.SourceQuench or IcmpType.Redirect
        or IcmpType.TimeExceeded or IcmpType.ParameterProblem;

    /// <summary>True when the checksum verifies over the message.</summary>
    public bool IsChecksumValid => Packets.Checksum.IsValid(Packets.Checksum.Add(0, _bytes));

    /// <summary>Views the whole of <paramref name="message"/>; false when it is shorter than the 8-byte header.</summary>
    public static bool TryParse(ReadOnlySpan<byte> message, out IcmpPacket view)
    {
        if (message.Length < HeaderLength)
        {
            view = default;
            return false;
        }

        view = new IcmpPacket(message);
        return true;
    }

    /// <summary>
    /// An error's quoted packet: its IPv4 header and as much of its payload as was sent (at least
    /// 8 bytes, RFC 792). False for other types, or when the quoted header is not whole.
    /// </summary>
    public bool TryGetQuotedPacket(out Ipv4Packet quoted)
    {
        if (!IsError)
        {
            quoted = default;
            return false;
        }

        return Ipv4Packet.TryParseQuoted(Data, out quoted);
    }
}

/// <summary>ICMP message types for IPv4 (RFC 792).</summary>
public enum IcmpType : byte
{
    /// <summary>Echo reply.</summary>
    EchoReply = 0,

    /// <summary>Destination unreachable; the code says why.</summary>
    DestinationUnreachable = 3,

    /// <summary>Source quench (deprecated, RFC 6633).</summary>
    SourceQuench = 4,

    /// <summary>Redirect.</summary>
    Redirect = 5,

    /// <summary>Echo request.</summary>
    EchoRequest = 8,

    /// <summary>Time exceeded (TTL or reassembly).</summary>
    TimeExceeded = 11,

    /// <summary>Parameter problem.</summary>
    ParameterProblem = 12,
}
