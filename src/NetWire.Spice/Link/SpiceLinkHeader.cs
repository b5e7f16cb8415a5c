using System.Buffers.Binary;

namespace NetWire.Spice.Link;

/// <summary>
/// SpiceLinkHeader (protocol.md §1.2): 16 bytes, little-endian, in both directions.
/// <code>
///   0 magic "REDQ" | 4 major (2) | 8 minor (2) | 12 size of what follows
/// </code>
/// </summary>
internal readonly record struct SpiceLinkHeader(uint Magic, uint MajorVersion, uint MinorVersion, uint Size)
{
    /// <summary>Wire size.</summary>
    public const int Length = 16;

    /// <summary>"REDQ" read as a little-endian u32.</summary>
    public const uint RedqMagic = 0x51444552;

    /// <summary>SPICE_VERSION_MAJOR.</summary>
    public const uint ProtocolMajor = 2;

    /// <summary>SPICE_VERSION_MINOR (2 since the mini-header change, Jan 2012).</summary>
    public const uint ProtocolMinor = 2;

    /// <summary>
    /// Largest link message a client may announce: the CVE-2016-9578 fix in spice-server.
    /// Nothing larger is read or allocated.
    /// </summary>
    public const uint MaxLinkMessSize = 4096;

    /// <summary>A server header announcing <paramref name="size"/> bytes.</summary>
    public static SpiceLinkHeader ForServer(uint size) => new(RedqMagic, ProtocolMajor, ProtocolMinor, size);

    /// <summary>Reads the four fields; false only when <paramref name="source"/> is shorter than 16 bytes.</summary>
    public static bool TryParse(ReadOnlySpan<byte> source, out SpiceLinkHeader header)
    {
        if (source.Length < Length)
        {
            header = default;
            return false;
        }

        header = new SpiceLinkHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(source),
            BinaryPrimitives.ReadUInt32LittleEndian(source[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(source[12..]));
        return true;
    }

    /// <summary>
    /// What the server must answer to this client header (protocol.md §1.2, current spice-server order):
    /// magic, then major version, then size bounds. Ok means "read Size more bytes".
    /// </summary>
    public SpiceLinkErr Validate()
    {
        if (Magic != RedqMagic)
        {
            return SpiceLinkErr.InvalidMagic;
        }

        if (MajorVersion != ProtocolMajor)
        {
            return SpiceLinkErr.VersionMismatch;
        }

        if (Size < SpiceLinkMess.FixedLength || Size > MaxLinkMessSize)
        {
            return SpiceLinkErr.InvalidData;
        }

        return SpiceLinkErr.Ok;
    }

    /// <summary>Writes the 16 bytes to <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], MajorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], MinorVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], Size);
    }
}
