using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace NetWire.Devices.Pcap;

/// <summary>Which container a capture file uses.</summary>
public enum CaptureFileFormat
{
    /// <summary>Classic libpcap, microsecond timestamps (magic a1b2c3d4).</summary>
    PcapMicroseconds,

    /// <summary>Classic libpcap, nanosecond timestamps (magic a1b23c4d).</summary>
    PcapNanoseconds,

    /// <summary>pcapng (section header block 0a0d0d0a).</summary>
    PcapNg,
}

/// <summary>One packet record: where it is, when it was captured, how long it was.</summary>
/// <param name="Number">1-based packet number in the file.</param>
/// <param name="Offset">Byte offset of the record header (pcap) or block (pcapng).</param>
/// <param name="TimestampNs">Capture time in nanoseconds since the Unix epoch.</param>
/// <param name="Interface">pcapng interface id; 0 for pcap.</param>
/// <param name="CapturedLength">Bytes present in the file.</param>
/// <param name="OriginalLength">Bytes on the wire.</param>
public readonly record struct CaptureRecord(long Number, long Offset, long TimestampNs, int Interface, int CapturedLength, int OriginalLength)
{
    /// <summary>pcapng epb_flags (bits 0-1: direction, 1 inbound, 2 outbound); 0 when absent or for pcap.</summary>
    public uint Flags { get; init; }
}

/// <summary>A pcapng interface (or the single pcap "interface").</summary>
/// <param name="LinkType">LINKTYPE_ value; only Ethernet (1) is accepted.</param>
/// <param name="SnapLength">Largest captured length allowed; 0 means no limit.</param>
public readonly record struct CaptureInterface(int LinkType, int SnapLength);

/// <summary>
/// A strict reader of pcap (micro- and nanosecond) and pcapng files with Ethernet link type.
/// </summary>
/// <remarks>
/// How this works: the file is read sequentially through one buffered stream; a record's bytes
/// are valid (<see cref="Data"/>) until the next <see cref="TryReadNext"/>. Every problem is a
/// <see cref="CaptureFormatException"/> naming the file, the packet number and the byte offset:
/// wrong magic, truncated header or record, a record longer than the snaplen or than
/// <see cref="MaxRecordLength"/>, a zero-length record, a link type other than Ethernet, a
/// pcapng block whose length is too small, unaligned, too large or differs from its trailer.
/// SharpPcap's CaptureFileReaderDevice goes through libpcap, which reports "truncated dump
/// file" without a record or offset and accepts what NetWire must refuse, hence this reader.
/// Deliberately left out: pcapng options other than if_tsresol, compressed files,
/// LINKTYPE_ other than Ethernet.
/// </remarks>
public sealed class CaptureFileReader : IDisposable
{
    /// <summary>No record may be longer than this (256 KiB), whatever the snaplen says.</summary>
    public const int MaxRecordLength = 256 * 1024;

    /// <summary>LINKTYPE_ETHERNET.</summary>
    public const int LinkTypeEthernet = 1;

    private const uint PcapMicroMagic = 0xa1b2c3d4;
    private const uint PcapNanoMagic = 0xa1b23c4d;
    private const uint SectionHeaderType = 0x0a0d0d0a;
    private const uint ByteOrderMagic = 0x1a2b3c4d;
    private const uint InterfaceDescriptionType = 1;
    private const uint ObsoletePacketType = 2;
    private const uint SimplePacketType = 3;
    private const uint EnhancedPacketType = 6;

    /// <summary>Non-packet blocks (section headers, statistics, name resolution) beyond this are refused.</summary>
    private const int MaxOtherBlockLength = 1024 * 1024;

    private readonly Stream _stream;
    private readonly List<CaptureInterface> _interfaces = [];
    private readonly List<long> _tsUnitsPerSecond = [];
    private byte[] _buffer = new byte[64 * 1024];

    /// <summary>Where <see cref="Data"/> lies: <see cref="_buffer"/>, or the read-ahead buffer when a pcap record is whole in it (no copy).</summary>
    private byte[] _dataArray;

    /// <summary>Read-ahead: file bytes from <see cref="_aheadStart"/> to <see cref="_aheadEnd"/> not yet consumed.</summary>
    private readonly byte[] _ahead = new byte[1 << 20];
    private int _aheadStart;
    private int _aheadEnd;
    private int _dataStart;
    private int _dataLength;
    private long _position;
    private long _records;
    private bool _bigEndian;

    private CaptureFileReader(string path, Stream stream)
    {
        Path = path;
        _stream = stream;
        _dataArray = _buffer;
    }

    /// <summary>The file as given.</summary>
    public string Path { get; }

    /// <summary>pcap or pcapng.</summary>
    public CaptureFileFormat Format { get; private set; }

    /// <summary>Interfaces declared so far (one for pcap).</summary>
    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    /// <summary>Packets read so far.</summary>
    public long RecordsRead => _records;

    /// <summary>The current record's captured bytes; valid until the next read.</summary>
    public ReadOnlySpan<byte> Data => _dataArray.AsSpan(_dataStart, _dataLength);

    /// <summary>Opens <paramref name="path"/> and validates its file header; throws <see cref="CaptureFormatException"/> or an <see cref="IOException"/>.</summary>
    public static CaptureFileReader Open(string path)
    {
        // No FileStream buffer: Fill reads ahead a megabyte at a time itself.
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        return Open(path, stream);
    }

    /// <summary>Reads from <paramref name="stream"/>, naming it <paramref name="path"/> in errors.</summary>
    public static CaptureFileReader Open(string path, Stream stream)
    {
        var reader = new CaptureFileReader(path, stream);
        try
        {
            reader.ReadFileHeader();
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>Reads the next packet; false at a clean end of file.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool TryReadNext(out CaptureRecord record)
    {
        return Format == CaptureFileFormat.PcapNg ? TryReadBlock(out record) : TryReadPcapRecord(out record);
    }

    /// <inheritdoc/>
    public void Dispose() => _stream.Dispose();

    private CaptureFormatException Error(long offset, string problem) => new(Path, _records + 1, offset, problem);

    private void ReadFileHeader()
    {
        Span<byte> head = stackalloc byte[24];
        var got = Fill(head);
        if (got < 4)
        {
            throw new CaptureFormatException(Path, 0, 0, got == 0 ? "empty file, not a pcap or pcapng file" : "truncated file header");
        }

        var magicLe = BinaryPrimitives.ReadUInt32LittleEndian(head);
        var magicBe = BinaryPrimitives.ReadUInt32BigEndian(head);
        if (magicLe == SectionHeaderType)
        {
            Format = CaptureFileFormat.PcapNg;
            _position = 0;
            ReadSectionHeader(head[..got], 0);
            return;
        }

        if (magicLe is PcapMicroMagic or PcapNanoMagic)
        {
            _bigEndian = false;
        }
        else if (magicBe is PcapMicroMagic or PcapNanoMagic)
        {
            _bigEndian = true;
        }
        else
        {
            throw new CaptureFormatException(Path, 0, 0, $"wrong magic 0x{magicBe:x8}: not a pcap (a1b2c3d4, a1b23c4d) or pcapng (0a0d0d0a) file");
        }

        Format = (_bigEndian ? magicBe : magicLe) == PcapNanoMagic ? CaptureFileFormat.PcapNanoseconds : CaptureFileFormat.PcapMicroseconds;
        if (got < 24)
        {
            throw new CaptureFormatException(Path, 0, got, $"truncated file header: {got} of 24 bytes");
        }

        var major = ReadU16(head[4..]);
        if (major != 2)
        {
            throw new CaptureFormatException(Path, 0, 4, $"unsupported pcap version {major}.{ReadU16(head[6..])}");
        }

        var snaplen = ReadU32(head[16..]);
        var linkType = (int)(ReadU32(head[20..]) & 0x0fffffff);
        if (linkType != LinkTypeEthernet)
        {
            throw new CaptureFormatException(Path, 0, 20, $"unknown link type {linkType}; only Ethernet (1) is supported");
        }

        _interfaces.Add(new CaptureInterface(linkType, snaplen > int.MaxValue ? 0 : (int)snaplen));
        _position = 24;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryReadPcapRecord(out CaptureRecord record)
    {
        record = default;
        var offset = _position;
        Span<byte> head = stackalloc byte[16];
        var got = Fill(head);
        if (got == 0)
        {
            return false;
        }

        if (got < 16)
        {
            throw Error(offset, $"truncated record header: {got} of 16 bytes before end of file");
        }

        var seconds = ReadU32(head);
        var fraction = ReadU32(head[4..]);
        var captured = ReadU32(head[8..]);
        var original = ReadU32(head[12..]);
        CheckCapturedLength(offset, captured, original, _interfaces[0].SnapLength);
        if (_aheadEnd - _aheadStart >= captured)
        {
            // The record is whole in the read-ahead buffer: hand it out from there. The buffer is
            // refilled only by the next read, after which Data is no longer valid anyway.
            _dataArray = _ahead;
            _dataStart = _aheadStart;
            _aheadStart += (int)captured;
        }
        else
        {
            EnsureBuffer((int)captured);
            var data = _buffer.AsSpan(0, (int)captured);
            got = Fill(data);
            if (got < captured)
            {
                throw Error(offset, $"truncated record: {got} of {captured} captured bytes before end of file");
            }

            _dataArray = _buffer;
            _dataStart = 0;
        }

        _position += 16 + captured;
        _dataLength = (int)captured;
        var ns = Format == CaptureFileFormat.PcapNanoseconds ? fraction : fraction * 1000L;
        record = new CaptureRecord(++_records, offset, (seconds * 1_000_000_000L) + ns, 0, (int)captured, (int)Math.Min(original, int.MaxValue));
        return true;
    }

    private void CheckCapturedLength(long offset, uint captured, uint original, int snapLength)
    {
        if (captured == 0)
        {
            throw Error(offset, "zero-length record");
        }

        if (captured > MaxRecordLength)
        {
            throw Error(offset, $"captured length {captured} exceeds the {MaxRecordLength}-byte (256 KiB) limit");
        }

        if (snapLength > 0 && captured > snapLength)
        {
            throw Error(offset, $"captured length {captured} exceeds the snaplen {snapLength}");
        }

        if (original < captured)
        {
            throw Error(offset, $"captured length {captured} exceeds the original length {original}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool TryReadBlock(out CaptureRecord record)
    {
        record = default;
        Span<byte> head = stackalloc byte[12];
        while (true)
        {
            var offset = _position;
            var got = Fill(head[..8]);
            if (got == 0)
            {
                return false;
            }

            if (got < 8)
            {
                throw Error(offset, $"truncated block header: {got} of 8 bytes before end of file");
            }

            var type = ReadU32(head);
            if (type == SectionHeaderType)
            {
                got += Fill(head[8..12]);
                ReadSectionHeader(head[..got], offset);
                continue;
            }

            var body = ReadBlockBody(offset, type, ReadU32(head[4..]));
            switch (type)
            {
                case InterfaceDescriptionType:
                    ReadInterface(offset, body);
                    break;
                case EnhancedPacketType when body.Length >= 20:
                    record = PacketFromBody(offset, (int)ReadU32(body), ((long)ReadU32(body[4..]) << 32) | ReadU32(body[8..]), ReadU32(body[12..]), ReadU32(body[16..]), body, 20);
                    record = record with { Flags = EpbFlags(body[Math.Min(body.Length, 20 + ((record.CapturedLength + 3) & ~3))..]) };
                    return true;
                case ObsoletePacketType when body.Length >= 20:
                    record = PacketFromBody(offset, ReadU16(body), ((long)ReadU32(body[4..]) << 32) | ReadU32(body[8..]), ReadU32(body[12..]), ReadU32(body[16..]), body, 20);
                    return true;
                case EnhancedPacketType or ObsoletePacketType:
                    throw Error(offset, $"packet block body of {body.Length} bytes is shorter than its 20-byte header");
                case SimplePacketType when body.Length >= 4:
                {
                    if (_interfaces.Count == 0)
                    {
                        throw Error(offset, "simple packet block before any interface description block");
                    }

                    var original = ReadU32(body);
                    var snap = _interfaces[0].SnapLength;
                    var captured = (uint)Math.Min(Math.Min(original, snap > 0 ? (uint)snap : uint.MaxValue), (uint)(body.Length - 4));
                    CheckCapturedLength(offset, captured, original, snap);
                    _dataStart = 8 + 4;
                    _dataArray = _buffer;
                    _dataLength = (int)captured;
                    record = new CaptureRecord(++_records, offset, 0, 0, (int)captured, (int)Math.Min(original, int.MaxValue));
                    return true;
                }

                case SimplePacketType:
                    throw Error(offset, "simple packet block shorter than its 4-byte header");
                default:
                    break;
            }
        }
    }

    /// <summary>The epb_flags option (code 2, 4 bytes) among an EPB's options; 0 when absent. Options that do not parse are ignored, not an error.</summary>
    private uint EpbFlags(ReadOnlySpan<byte> options)
    {
        while (options.Length >= 4)
        {
            var code = ReadU16(options);
            var length = ReadU16(options[2..]);
            if (code == 0 || 4 + length > options.Length)
            {
                break;
            }

            if (code == 2 && length == 4)
            {
                return ReadU32(options[4..]);
            }

            options = options[Math.Min(options.Length, 4 + ((length + 3) & ~3))..];
        }

        return 0;
    }

    private CaptureRecord PacketFromBody(long offset, int interfaceId, long timestamp, uint captured, uint original, ReadOnlySpan<byte> body, int headerLength)
    {
        if (interfaceId < 0 || interfaceId >= _interfaces.Count)
        {
            throw Error(offset, $"packet names interface {interfaceId}, but {_interfaces.Count} are described");
        }

        CheckCapturedLength(offset, captured, original, _interfaces[interfaceId].SnapLength);
        if (captured > body.Length - headerLength)
        {
            throw Error(offset, $"captured length {captured} runs past the end of its block ({body.Length - headerLength} bytes of data)");
        }

        _dataStart = 8 + headerLength;
        _dataArray = _buffer;
        _dataLength = (int)captured;
        var unitsPerSecond = _tsUnitsPerSecond[interfaceId];
        var ns = unitsPerSecond == 1_000_000_000L
            ? timestamp
            : (long)((Int128)timestamp * 1_000_000_000L / unitsPerSecond);
        return new CaptureRecord(++_records, offset, ns, interfaceId, (int)captured, (int)Math.Min(original, int.MaxValue));
    }

    /// <summary>Reads the rest of a block after its 8-byte header into the buffer (body at offset 8) and checks the trailing length.</summary>
    private ReadOnlySpan<byte> ReadBlockBody(long offset, uint type, uint length)
    {
        var packet = type is EnhancedPacketType or SimplePacketType or ObsoletePacketType;
        var limit = packet ? MaxRecordLength + 64 : MaxOtherBlockLength;
        if (length < 12 || length % 4 != 0 || length > limit)
        {
            throw Error(offset, $"bad block length {length} for block type 0x{type:x8} (at least 12, a multiple of 4, at most {limit})");
        }

        EnsureBuffer((int)length);
        var rest = _buffer.AsSpan(8, (int)length - 8);
        var got = Fill(rest);
        if (got < rest.Length)
        {
            throw Error(offset, $"truncated block: {got + 8} of {length} bytes before end of file");
        }

        var trailer = ReadU32(rest[^4..]);
        if (trailer != length)
        {
            throw Error(offset, $"bad block length: header says {length}, trailer says {trailer}");
        }

        _position += length;
        return rest[..^4];
    }

    private void ReadSectionHeader(ReadOnlySpan<byte> head, long offset)
    {
        if (head.Length < 12)
        {
            throw Error(offset, $"truncated section header block: {head.Length} of 12 bytes before end of file");
        }

        var bom = BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
        if (bom == ByteOrderMagic)
        {
            _bigEndian = false;
        }
        else if (BinaryPrimitives.ReverseEndianness(bom) == ByteOrderMagic)
        {
            _bigEndian = true;
        }
        else
        {
            throw Error(offset + 8, $"bad byte-order magic 0x{bom:x8} in section header block");
        }

        var length = ReadU32(head[4..]);
        if (length < 28 || length % 4 != 0 || length > MaxOtherBlockLength)
        {
            throw Error(offset, $"bad block length {length} for the section header block (at least 28, a multiple of 4)");
        }

        EnsureBuffer((int)length);
        head.CopyTo(_buffer);
        var rest = _buffer.AsSpan(head.Length, (int)length - head.Length);
        var got = Fill(rest);
        if (got < rest.Length)
        {
            throw Error(offset, $"truncated section header block: {got + head.Length} of {length} bytes before end of file");
        }

        rest = _buffer.AsSpan(12, (int)length - 12);
        if (ReadU32(rest[^4..]) != length)
        {
            throw Error(offset, $"bad block length: header says {length}, trailer says {ReadU32(rest[^4..])}");
        }

        var major = ReadU16(rest);
        if (major != 1)
        {
            throw Error(offset + 12, $"unsupported pcapng version {major}");
        }

        _interfaces.Clear();
        _tsUnitsPerSecond.Clear();
        _position = offset + length;
    }

    private void ReadInterface(long offset, ReadOnlySpan<byte> body)
    {
        if (body.Length < 8)
        {
            throw Error(offset, "interface description block shorter than its 8-byte header");
        }

        var linkType = ReadU16(body);
        if (linkType != LinkTypeEthernet)
        {
            throw Error(offset, $"interface {_interfaces.Count} has unknown link type {linkType}; only Ethernet (1) is supported");
        }

        var snap = ReadU32(body[4..]);
        long unitsPerSecond = 1_000_000;
        var options = body[8..];
        while (options.Length >= 4)
        {
            var code = ReadU16(options);
            var length = ReadU16(options[2..]);
            if (code == 0)
            {
                break;
            }

            var padded = (length + 3) & ~3;
            if (4 + padded > options.Length)
            {
                throw Error(offset, $"interface option {code} of {length} bytes runs past the end of its block");
            }

            if (code == 9 && length >= 1)
            {
                // pcapng 4.2 if_tsresol: high bit clear = 10^-n, set = 2^-n seconds.
                var resolution = options[4];
                var exponent = resolution & 0x7f;
                if ((resolution & 0x80) == 0 ? exponent > 18 : exponent > 62)
                {
                    throw Error(offset, $"unsupported timestamp resolution 0x{resolution:x2}");
                }

                unitsPerSecond = (resolution & 0x80) == 0 ? (long)Math.Pow(10, exponent) : 1L << exponent;
            }

            options = options[(4 + padded)..];
        }

        _interfaces.Add(new CaptureInterface(linkType, snap > int.MaxValue ? 0 : (int)snap));
        _tsUnitsPerSecond.Add(unitsPerSecond);
    }

    private void EnsureBuffer(int length)
    {
        if (_buffer.Length < length)
        {
            var bigger = new byte[Math.Max(length, _buffer.Length * 2)];
            _buffer.AsSpan(0, 12).CopyTo(bigger);
            _buffer = bigger;
        }
    }

    /// <summary>Reads until <paramref name="into"/> is full or the file ends; returns the bytes read.</summary>
    /// <summary>Copies the next bytes of the file into <paramref name="into"/>; returns how many there were (fewer only at end of file).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int Fill(Span<byte> into)
    {
        var total = 0;
        while (total < into.Length)
        {
            if (_aheadStart == _aheadEnd)
            {
                // Large reads go straight to the stream; small ones through the read-ahead buffer,
                // so a file of small records costs one read(2) per megabyte, not two per record.
                if (into.Length - total >= _ahead.Length)
                {
                    var direct = _stream.Read(into[total..]);
                    if (direct == 0)
                    {
                        break;
                    }

                    total += direct;
                    continue;
                }

                _aheadStart = 0;
                _aheadEnd = _stream.Read(_ahead);
                if (_aheadEnd == 0)
                {
                    break;
                }
            }

            var n = Math.Min(into.Length - total, _aheadEnd - _aheadStart);
            _ahead.AsSpan(_aheadStart, n).CopyTo(into[total..]);
            _aheadStart += n;
            total += n;
        }

        return total;
    }

    private uint ReadU32(ReadOnlySpan<byte> bytes) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : BinaryPrimitives.ReadUInt32LittleEndian(bytes);

    private int ReadU16(ReadOnlySpan<byte> bytes) => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(bytes) : BinaryPrimitives.ReadUInt16LittleEndian(bytes);
}
