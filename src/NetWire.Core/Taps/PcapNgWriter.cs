using System.Buffers.Binary;
using System.Text;

namespace NetWire.Core.Taps;

/// <summary>
/// Writes a pcapng stream (one section, Ethernet interfaces, Enhanced Packet Blocks with the
/// direction in epb_flags) that Wireshark and tshark read.
/// </summary>
/// <remarks>
/// How this works: the Section Header Block is written at once; each interface gets an
/// Interface Description Block when it is added (pcapng allows IDBs anywhere before their first
/// use). Blocks are built in a reused scratch buffer under a lock and appended to a buffered
/// stream, flushed by <see cref="Flush"/> (the owner calls it periodically) and on dispose.
/// Timestamps use the default resolution, microseconds. Layout: draft-ietf-opsawg-pcapng,
/// sections 4.1 (SHB), 4.2 (IDB), 4.3 (EPB) and 4.3.1 (epb_flags).
/// </remarks>
public sealed class PcapNgWriter : ICaptureSink, IDisposable
{
    private const uint SectionHeaderType = 0x0A0D0D0A;
    private const uint InterfaceDescriptionType = 0x00000001;
    private const uint EnhancedPacketType = 0x00000006;
    private const uint ByteOrderMagic = 0x1A2B3C4D;
    private const ushort LinkTypeEthernet = 1;
    private const ushort OptEndOfOpt = 0;
    private const ushort OptComment = 1;
    private const ushort OptIfName = 2;
    private const ushort OptIfDescription = 3;
    private const ushort OptEpbFlags = 2;
    private const ushort OptShbUserAppl = 4;

    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly int _snapLength;

    /// <summary>Guards the scratch buffer, the stream and the counters.</summary>
    private readonly Lock _lock = new();

    /// <summary>Block under construction; large enough for the biggest EPB.</summary>
    private readonly byte[] _scratch;

    private int _interfaces;
    private long _framesWritten;
    private bool _disposed;

    /// <summary>Writes to <paramref name="stream"/>; <paramref name="snapLength"/> caps the bytes kept per frame.</summary>
    public PcapNgWriter(Stream stream, bool ownsStream, int snapLength = 262_144)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(snapLength, 1);
        _stream = stream;
        _ownsStream = ownsStream;
        _snapLength = snapLength;
        _scratch = new byte[Math.Min(snapLength, 262_144) + 64];
        WriteSectionHeader();
    }

    /// <summary>Opens <paramref name="path"/> for writing (truncating it); "-" is standard output.</summary>
    public static PcapNgWriter Create(string path, int snapLength = 262_144)
    {
        Stream stream = path == "-"
            ? Console.OpenStandardOutput()
            : new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1, FileOptions.None);
        return new PcapNgWriter(new BufferedStream(stream, 1 << 16), ownsStream: true, snapLength);
    }

    /// <inheritdoc/>
    public long FramesWritten => Interlocked.Read(ref _framesWritten);

    /// <inheritdoc/>
    public int AddInterface(string name, string description)
    {
        lock (_lock)
        {
            var span = _scratch.AsSpan();
            var at = 8;
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], LinkTypeEthernet);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 2)..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)_snapLength);
            at += 8;
            at = WriteStringOption(span, at, OptIfName, name);
            at = WriteStringOption(span, at, OptIfDescription, description);
            at = WriteEndOfOptions(span, at);
            FinishBlock(span, InterfaceDescriptionType, at);
            return _interfaces++;
        }
    }

    /// <inheritdoc/>
    public void Write(int interfaceId, ReadOnlySpan<byte> frame, CaptureDirection direction, DateTimeOffset timestamp)
    {
        var captured = Math.Min(frame.Length, _snapLength);
        var micros = (ulong)((timestamp.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10);
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            var span = _scratch.AsSpan();
            BinaryPrimitives.WriteUInt32LittleEndian(span[8..], (uint)interfaceId);
            BinaryPrimitives.WriteUInt32LittleEndian(span[12..], (uint)(micros >> 32));
            BinaryPrimitives.WriteUInt32LittleEndian(span[16..], (uint)micros);
            BinaryPrimitives.WriteUInt32LittleEndian(span[20..], (uint)captured);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], (uint)frame.Length);
            frame[..captured].CopyTo(span[28..]);
            var at = 28 + Pad4(captured);
            span[(28 + captured)..at].Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], OptEpbFlags);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 2)..], 4);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)direction);
            at = WriteEndOfOptions(span, at + 8);
            FinishBlock(span, EnhancedPacketType, at);
            _framesWritten++;
        }
    }

    /// <summary>Pushes buffered blocks to the file or pipe.</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (!_disposed)
            {
                _stream.Flush();
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _stream.Flush();
            if (_ownsStream)
            {
                _stream.Dispose();
            }
        }
    }

    private void WriteSectionHeader()
    {
        var span = _scratch.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(span[14..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], -1);
        var at = WriteStringOption(span, 24, OptShbUserAppl, "NetWire");
        at = WriteStringOption(span, at, OptComment, "frames crossing NetWire wires; inbound = from the guest");
        at = WriteEndOfOptions(span, at);
        FinishBlock(span, SectionHeaderType, at);
    }

    private void FinishBlock(Span<byte> span, uint type, int bodyEnd)
    {
        var total = bodyEnd + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(span, type);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(span[bodyEnd..], (uint)total);
        _stream.Write(span[..total]);
    }

    private static int WriteStringOption(Span<byte> span, int at, ushort code, string value)
    {
        var length = Encoding.UTF8.GetBytes(value, span[(at + 4)..]);
        BinaryPrimitives.WriteUInt16LittleEndian(span[at..], code);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 2)..], (ushort)length);
        var end = at + 4 + Pad4(length);
        span[(at + 4 + length)..end].Clear();
        return end;
    }

    private static int WriteEndOfOptions(Span<byte> span, int at)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(span[at..], OptEndOfOpt);
        return at + 4;
    }

    private static int Pad4(int length) => (length + 3) & ~3;
}
