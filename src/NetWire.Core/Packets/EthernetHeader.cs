using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>An Ethernet II header: what <see cref="EthernetFrame"/> reads, to write.</summary>
/// <param name="Destination">The destination address.</param>
/// <param name="Source">The source address.</param>
/// <param name="EtherType">What the payload is.</param>
public readonly record struct EthernetHeader(MacAddress Destination, MacAddress Source, EtherType EtherType)
{
    /// <summary>Bytes <see cref="WriteTo"/> writes.</summary>
    public static int Length => EthernetFrame.HeaderLength;

    /// <summary>The header of <paramref name="frame"/>; false when it is too short.</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, out EthernetHeader header)
    {
        if (!EthernetFrame.TryParse(frame, out var view))
        {
            header = default;
            return false;
        }

        header = new EthernetHeader(view.Destination, view.Source, view.EtherType);
        return true;
    }

    /// <summary>Writes the 14 header bytes to the start of <paramref name="frame"/>.</summary>
    public void WriteTo(Span<byte> frame)
    {
        Destination.WriteTo(frame);
        Source.WriteTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..EthernetFrame.HeaderLength], (ushort)EtherType);
    }
}
