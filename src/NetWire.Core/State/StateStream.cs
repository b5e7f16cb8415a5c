using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace NetWire.Core.State;

/// <summary>
/// The appliance state stream that migration sends from the source to the target.
/// </summary>
/// <remarks>
/// Layout (integers little-endian):
/// <code>
///   0   4  magic "NWST"
///   4   2  version of the writer's format
///   6   2  oldest reader version that can read it
///   8      sections, each: u8 name length (1..64), name (a-z 0-9 . - _), u32 data length, data
///          end marker: u8 0
///          SHA-256 of every byte before it (32 bytes)
/// </code>
/// A reader of version R accepts a stream whose oldest-compatible version is at most R and whose
/// version is at least <see cref="OldestReadableVersion"/>; anything else is refused from the
/// 8-byte header alone, before any section is read. Limits: <see cref="MaxSections"/> sections,
/// <see cref="MaxSectionBytes"/> per section, <see cref="MaxStreamBytes"/> in all; a stream
/// over a limit, with a duplicate or badly named section, cut short, or with a wrong checksum is
/// refused with a <see cref="StateFormatException"/> saying which and where.
/// </remarks>
public static class StateStream
{
    /// <summary>The format this NetWire writes.</summary>
    public const ushort CurrentVersion = 1;

    /// <summary>The oldest reader version that can read what this NetWire writes.</summary>
    public const ushort OldestCompatibleVersion = 1;

    /// <summary>The oldest stream version this NetWire still reads.</summary>
    public const ushort OldestReadableVersion = 1;

    /// <summary>Magic, version and oldest compatible version.</summary>
    public const int HeaderLength = 8;

    /// <summary>The SHA-256 at the end.</summary>
    public const int ChecksumLength = 32;

    /// <summary>The longest section name.</summary>
    public const int MaxNameLength = 64;

    /// <summary>The most sections one stream may hold.</summary>
    public const int MaxSections = 256;

    /// <summary>The largest section body (64 MiB: the gateway's live connections with their buffers).</summary>
    public const int MaxSectionBytes = 64 << 20;

    /// <summary>The largest stream (256 MiB).</summary>
    public const int MaxStreamBytes = 256 << 20;

    private static ReadOnlySpan<byte> Magic => "NWST"u8;

    /// <summary>Writes every section into one stream (header, sections, end marker, checksum).</summary>
    /// <exception cref="ArgumentException">A section name is invalid or repeated, or a section is over the limit.</exception>
    public static byte[] Build(IEnumerable<IStateSection> sections, ushort version = CurrentVersion, ushort oldestCompatible = OldestCompatibleVersion)
    {
        using var output = new MemoryStream();
        output.Write(Header(version, oldestCompatible));
        var names = new HashSet<string>(StringComparer.Ordinal);
        Span<byte> length = stackalloc byte[4];
        foreach (var section in sections)
        {
            if (!IsValidName(section.Name) || !names.Add(section.Name))
            {
                throw new ArgumentException($"state section name '{section.Name}' is invalid or used twice", nameof(sections));
            }

            var writer = new StateSectionWriter();
            section.Write(writer);
            if (writer.Length > MaxSectionBytes)
            {
                throw new ArgumentException($"state section '{section.Name}' is {writer.Length} bytes, over {MaxSectionBytes}", nameof(sections));
            }

            output.WriteByte((byte)section.Name.Length);
            output.Write(Encoding.ASCII.GetBytes(section.Name));
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)writer.Length);
            output.Write(length);
            output.Write(writer.Written.Span);
        }

        output.WriteByte(0);
        output.Write(SHA256.HashData(output.GetBuffer().AsSpan(0, (int)output.Length)));
        return output.ToArray();
    }

    /// <summary>
    /// The 8-byte header <see cref="Build"/> starts with: it depends on the versions alone, so a
    /// sender may send it before the sections are written (a migration source, while it freezes).
    /// </summary>
    public static byte[] Header(ushort version = CurrentVersion, ushort oldestCompatible = OldestCompatibleVersion)
    {
        var header = new byte[HeaderLength];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), version);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), oldestCompatible);
        return header;
    }

    /// <summary>Checks the 8-byte header; returns the stream version.</summary>
    /// <exception cref="StateFormatException">Not a state stream, or a version this NetWire cannot read.</exception>
    public static ushort CheckHeader(ReadOnlySpan<byte> header)
    {
        if (header.Length < HeaderLength || !header[..4].SequenceEqual(Magic))
        {
            throw new StateFormatException($"not a NetWire state stream: it starts with {Convert.ToHexString(header[..Math.Min(4, header.Length)])}, expected 4E575354 (\"NWST\")");
        }

        var version = BinaryPrimitives.ReadUInt16LittleEndian(header[4..]);
        var oldest = BinaryPrimitives.ReadUInt16LittleEndian(header[6..]);
        if (version == 0 || oldest == 0 || oldest > version)
        {
            throw new StateFormatException($"state stream header is inconsistent: version {version}, oldest compatible version {oldest}");
        }

        if (oldest > CurrentVersion)
        {
            throw new StateFormatException($"state stream version {version} needs a reader of version {oldest} or newer; this NetWire reads versions {OldestReadableVersion} to {CurrentVersion}");
        }

        if (version < OldestReadableVersion)
        {
            throw new StateFormatException($"state stream version {version} is older than this NetWire reads (versions {OldestReadableVersion} to {CurrentVersion})");
        }

        return version;
    }

    /// <summary>Reads a whole stream from <paramref name="input"/>, header first (refused before anything else is read).</summary>
    /// <exception cref="StateFormatException">Bad input; the message says which part and where.</exception>
    /// <exception cref="EndOfStreamException">Not thrown: a stream cut short is a <see cref="StateFormatException"/>.</exception>
    public static async Task<StateDocument> ReadAsync(Stream input, CancellationToken cancellationToken)
    {
        var header = new byte[HeaderLength];
        await FillAsync(input, header, "header", 0, cancellationToken).ConfigureAwait(false);
        return await ReadAsync(input, header, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the rest of a stream whose <paramref name="header"/> was read already (a listener
    /// that waits for the header before it commits to reading a stream); the header is checked first.
    /// </summary>
    /// <exception cref="StateFormatException">Bad input; the message says which part and where.</exception>
    public static async Task<StateDocument> ReadAsync(Stream input, ReadOnlyMemory<byte> header, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var version = CheckHeader(header.Span);
        hash.AppendData(header.Span);
        long offset = HeaderLength;
        var sections = new List<StateDocumentSection>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var one = new byte[1];
        var lengthBytes = new byte[4];
        while (true)
        {
            await FillAsync(input, one, "section name length", offset, cancellationToken).ConfigureAwait(false);
            hash.AppendData(one);
            offset++;
            if (one[0] == 0)
            {
                break;
            }

            if (one[0] > MaxNameLength)
            {
                throw new StateFormatException($"section name length {one[0]} at offset {offset - 1} is over {MaxNameLength}");
            }

            if (sections.Count == MaxSections)
            {
                throw new StateFormatException($"more than {MaxSections} sections (offset {offset - 1})");
            }

            var nameBytes = new byte[one[0]];
            await FillAsync(input, nameBytes, "section name", offset, cancellationToken).ConfigureAwait(false);
            var name = Encoding.ASCII.GetString(nameBytes);
            if (!IsValidName(name) || !names.Add(name))
            {
                throw new StateFormatException($"section name at offset {offset} is invalid or repeated: '{Printable(nameBytes)}'");
            }

            hash.AppendData(nameBytes);
            offset += nameBytes.Length;
            await FillAsync(input, lengthBytes, $"length of section '{name}'", offset, cancellationToken).ConfigureAwait(false);
            hash.AppendData(lengthBytes);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
            if (length > MaxSectionBytes || offset + 4 + length > MaxStreamBytes)
            {
                throw new StateFormatException($"section '{name}' announces {length} bytes at offset {offset}: over the limit ({MaxSectionBytes} per section, {MaxStreamBytes} in all)");
            }

            offset += 4;
            var data = new byte[length];
            await FillAsync(input, data, $"section '{name}' ({length} bytes)", offset, cancellationToken).ConfigureAwait(false);
            hash.AppendData(data);
            offset += length;
            sections.Add(new StateDocumentSection(name, data));
        }

        var checksum = new byte[ChecksumLength];
        await FillAsync(input, checksum, "checksum", offset, cancellationToken).ConfigureAwait(false);
        if (!CryptographicOperations.FixedTimeEquals(checksum, hash.GetHashAndReset()))
        {
            throw new StateFormatException($"state stream checksum at offset {offset} does not match its content");
        }

        return new StateDocument(version, sections, offset + ChecksumLength);
    }

    /// <summary>Reads a stream held in memory (tests, files).</summary>
    public static StateDocument Parse(byte[] bytes)
    {
        using var input = new MemoryStream(bytes, writable: false);
        return ReadAsync(input, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>True for a section name of 1 to <see cref="MaxNameLength"/> characters from a-z, 0-9, '.', '-' and '_'.</summary>
    public static bool IsValidName(string name)
    {
        if (name.Length is 0 or > MaxNameLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-' or '_'))
            {
                return false;
            }
        }

        return true;
    }

    private static string Printable(byte[] bytes) => new(bytes.Select(b => b is >= 0x20 and < 0x7F ? (char)b : '?').ToArray());

    private static async Task FillAsync(Stream input, byte[] buffer, string what, long offset, CancellationToken cancellationToken)
    {
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await input.ReadAsync(buffer.AsMemory(read), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                throw new StateFormatException($"state stream cut short in the {what} at offset {offset + read}");
            }

            read += n;
        }
    }
}

/// <summary>One section as read from a stream, not yet adopted.</summary>
public sealed record StateDocumentSection(string Name, ReadOnlyMemory<byte> Data);

/// <summary>A state stream that passed every check: its version, sections in stream order, and size.</summary>
public sealed record StateDocument(ushort Version, IReadOnlyList<StateDocumentSection> Sections, long Length);
