using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// An IPv4 header without options (RFC 791) as values: what <see cref="Ipv4Packet"/> reads, to
/// write. The defaults are what the gateway sends: DF set, TTL 64, type of service 0.
/// </summary>
/// <param name="Source">The source address, host order.</param>
/// <param name="Destination">The destination address, host order.</param>
/// <param name="Protocol">The payload's protocol.</param>
/// <param name="PayloadLength">Bytes after the header.</param>
public readonly record struct Ipv4Header(uint Source, uint Destination, IpProtocol Protocol, int PayloadLength)
{
    /// <summary>The identification field.</summary>
    public ushort Identification { get; init; }

    /// <summary>The time-to-live field.</summary>
    public byte TimeToLive { get; init; } = 64;

    /// <summary>The DF flag.</summary>
    public bool DontFragment { get; init; } = true;

    /// <summary>The MF flag.</summary>
    public bool MoreFragments { get; init; }

    /// <summary>The fragment offset in bytes (a multiple of 8).</summary>
    public int FragmentOffset { get; init; }

    /// <summary>The type-of-service byte.</summary>
    public byte TypeOfService { get; init; }

    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public static int Length => Ipv4Packet.MinHeaderLength;

    /// <summary>
    /// The header of the packet at the start of <paramref name="packet"/> (options are not
    /// kept); false as <see cref="Ipv4Packet.TryParse"/>.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> packet, out Ipv4Header header)
    {
        if (!Ipv4Packet.TryParse(packet, out var view))
        {
            header = default;
            return false;
        }

        header = new Ipv4Header(view.Source, view.Destination, view.Protocol, view.Payload.Length)
        {
            Identification = view.Identification,
            TimeToLive = view.TimeToLive,
            DontFragment = view.DontFragment,
            MoreFragments = view.MoreFragments,
            FragmentOffset = view.FragmentOffset,
            TypeOfService = view.TypeOfService,
        };
        return true;
    }

    /// <summary>Writes the 20 header bytes, checksum included, to the start of <paramref name="packet"/>.</summary>
    public void WriteTo(Span<byte> packet)
    {
        var header = packet[..Ipv4Packet.MinHeaderLength];
        header[0] = 0x45;
        header[1] = TypeOfService;
        BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)(Ipv4Packet.MinHeaderLength + PayloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], Identification);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], (ushort)((DontFragment ? 0x4000 : 0) | (MoreFragments ? 0x2000 : 0) | ((FragmentOffset / 8) & 0x1fff)));
        header[8] = TimeToLive;
        header[9] = (byte)Protocol;
        header[10] = 0;
        header[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(header[12..], Source);
        BinaryPrimitives.WriteUInt32BigEndian(header[16..], Destination);
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], Checksum.Compute(header));
    }
}
