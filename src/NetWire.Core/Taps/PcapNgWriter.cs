using System.Buffers.Binary;
using System.Text;
using NetWire.Core.Net;

namespace NetWire.Core.Taps;

/// <summary>
/// Writes a pcapng stream (one section per file, Ethernet interfaces, Enhanced Packet Blocks with
/// the direction in epb_flags) that Wireshark and tshark read, from a file, a FIFO or a pipe.
/// </summary>
/// <remarks>
/// How this works: <see cref="Write"/> builds a block in a scratch buffer and appends it to a
/// chunk of a fixed pool (<see cref="PcapNgWriterOptions.BufferBytes"/> in all). A writer thread
/// takes full chunks, or the partly filled one every <see cref="PcapNgWriterOptions.FlushInterval"/>,
/// writes them in one go and flushes, so a reader at the other end of a pipe sees frames within
/// that interval. The data path never waits for the output: when every chunk is taken (a slow
/// reader, a slow disk) the frame is dropped and counted in <see cref="FramesDropped"/>; when the
/// output fails (the reader of a pipe went away) the frames it held and every later frame are
/// counted the same way, and <see cref="OutputError"/> says why.
///
/// Rotation (<see cref="PcapNgWriterOptions.MaxFileBytes"/>): before a packet block would take the
/// current file past the limit, a new chunk is started that opens the next file with its own
/// Section Header Block and the Interface Description Blocks of every interface so far, so each
/// file stands alone and none exceeds the limit. Files are named by <see cref="RotatedName"/>.
///
/// Timestamps use the default resolution, microseconds. Layout: draft-ietf-opsawg-pcapng,
/// sections 4.1 (SHB), 4.2 (IDB), 4.3 (EPB) and 4.3.1 (epb_flags).
/// </remarks>
public sealed class PcapNgWriter : ICaptureSink, IDisposable
{
    /// <summary>The largest frame kept whole, and the default snap length.</summary>
    public const int MaxSnapLength = 262_144;

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

    /// <summary>Bytes an EPB adds around the frame: header 28, flags option 8, end of options 4, trailing length 4.</summary>
    private const int PacketBlockOverhead = 44;

    /// <summary>Longest interface name or description kept, in bytes, so an IDB always fits a chunk.</summary>
    private const int MaxOptionText = 1024;

    private readonly PcapNgWriterOptions _options;
    private readonly Func<int, Stream>? _openNext;
    private readonly bool _ownsStream;

    /// <summary>Guards the scratch buffer, the chunk lists, the interface list and the counters below.</summary>
    private readonly Lock _lock = new();

    /// <summary>Block under construction; large enough for the biggest block.</summary>
    private readonly byte[] _scratch;

    /// <summary>Chunks ready for the writer thread, in order. Guarded by <see cref="_lock"/>.</summary>
    private readonly Queue<Chunk> _full = new();

    /// <summary>Chunks free for <see cref="Write"/>. Guarded by <see cref="_lock"/>.</summary>
    private readonly Stack<Chunk> _free = new();

    /// <summary>Interface Description Blocks so far, repeated at the head of each rotated file. Guarded by <see cref="_lock"/>.</summary>
    private readonly List<byte[]> _interfaceBlocks = [];

    /// <summary>Wakes the writer thread: a chunk is full, a flush was asked for, or disposal.</summary>
    private readonly AutoResetEvent _wake = new(false);

    private readonly Thread _thread;
    private readonly int _chunkBytes;

    /// <summary>The chunk <see cref="Write"/> appends to. Guarded by <see cref="_lock"/>.</summary>
    private Chunk _current;

    /// <summary>Bytes assigned to the file being filled (written or queued). Guarded by <see cref="_lock"/>.</summary>
    private long _fileBytes;

    /// <summary>Whether the file being filled holds a packet block yet. Guarded by <see cref="_lock"/>.</summary>
    private bool _fileHasPackets;

    /// <summary>The output stream; only the writer thread (and Dispose after it ends) touches it.</summary>
    private Stream _stream;

    private int _filesOpened = 1;
    private long _framesWritten;
    private long _framesDropped;
    private long _framesTruncated;
    private string? _outputError;
    private volatile bool _stopping;
    private bool _disposed;

    /// <summary>Writes to <paramref name="stream"/>; <paramref name="snapLength"/> caps the bytes kept per frame.</summary>
    public PcapNgWriter(Stream stream, bool ownsStream, int snapLength = MaxSnapLength)
        : this(stream, ownsStream, new PcapNgWriterOptions { SnapLength = snapLength }, null)
    {
    }

    /// <summary>
    /// Writes to <paramref name="stream"/>, the first file; with rotation, <paramref name="openNext"/>
    /// opens file number 1, 2, ... when the one before is full.
    /// </summary>
    public PcapNgWriter(Stream stream, bool ownsStream, PcapNgWriterOptions options, Func<int, Stream>? openNext)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.SnapLength, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.SnapLength, MaxSnapLength);
        if (options.MaxFileBytes > 0)
        {
            ArgumentNullException.ThrowIfNull(openNext);
            ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxFileBytes, MinFileBytes(options.SnapLength));
        }

        _stream = stream;
        _ownsStream = ownsStream;
        _options = options;
        _openNext = openNext;
        _scratch = new byte[Pad4(options.SnapLength) + PacketBlockOverhead + (2 * MaxOptionText) + 64];
        _chunkBytes = Math.Max(1 << 16, _scratch.Length);
        var chunks = Math.Max(2, options.BufferBytes / _chunkBytes);
        for (var i = 0; i < chunks; i++)
        {
            _free.Push(new Chunk(_chunkBytes));
        }

        _current = _free.Pop();
        AppendBlock(_scratch.AsSpan(0, BuildSectionHeader(_scratch)), isPacket: false);
        _thread = new Thread(WriteLoop) { IsBackground = true, Name = "pcapng writer" };
        _thread.Start();
    }

    /// <summary>
    /// Opens <paramref name="path"/> for writing (truncating a regular file; a FIFO is opened as is,
    /// which waits for its reader); "-" is standard output. With rotation, later files are named by
    /// <see cref="RotatedName"/>.
    /// </summary>
    public static PcapNgWriter Create(string path, PcapNgWriterOptions? options = null)
    {
        options ??= new PcapNgWriterOptions();
        if (options.MaxFileBytes > 0 && path == "-")
        {
            throw new ArgumentException("rotation needs a regular file, not standard output");
        }

        var first = Open(path);
        if (options.MaxFileBytes > 0 && !first.CanSeek)
        {
            first.Dispose();
            throw new ArgumentException($"'{path}' is not a regular file: rotation needs one");
        }

        return new PcapNgWriter(first, ownsStream: true, options, index => Open(RotatedName(path, index)));
    }

    /// <summary>Opens <paramref name="path"/> for writing, truncating it; "-" is standard output.</summary>
    public static PcapNgWriter Create(string path, int snapLength) => Create(path, new PcapNgWriterOptions { SnapLength = snapLength });

    /// <summary>The name of file <paramref name="index"/> of a rotated capture: <c>cap.pcapng</c>, <c>cap.1.pcapng</c>, <c>cap.2.pcapng</c>, ...</summary>
    public static string RotatedName(string path, int index)
    {
        if (index == 0)
        {
            return path;
        }

        var extension = Path.GetExtension(path);
        var stem = path[..^extension.Length];
        return string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{stem}.{index}{extension}");
    }

    /// <summary>The smallest rotation limit for a snap length: headers plus one whole packet block.</summary>
    public static long MinFileBytes(int snapLength) => Pad4(snapLength) + PacketBlockOverhead + (4 * MaxOptionText) + 4096;

    /// <inheritdoc/>
    public long FramesWritten => Interlocked.Read(ref _framesWritten);

    /// <inheritdoc/>
    public long FramesDropped => Interlocked.Read(ref _framesDropped);

    /// <summary>Frames kept shorter than they were because of the snap length.</summary>
    public long FramesTruncated => Interlocked.Read(ref _framesTruncated);

    /// <summary>Files opened so far (1 without rotation).</summary>
    public int FilesOpened => Volatile.Read(ref _filesOpened);

    /// <summary>Why the output stopped taking data (the reader went away, the disk is full), or null.</summary>
    public string? OutputError => Volatile.Read(ref _outputError);

    /// <inheritdoc/>
    public int AddInterface(string name, string description)
    {
        lock (_lock)
        {
            var span = _scratch.AsSpan();
            var at = 8;
            BinaryPrimitives.WriteUInt16LittleEndian(span[at..], LinkTypeEthernet);
            BinaryPrimitives.WriteUInt16LittleEndian(span[(at + 2)..], 0);
            BinaryPrimitives.WriteUInt32LittleEndian(span[(at + 4)..], (uint)_options.SnapLength);
            at += 8;
            at = WriteStringOption(span, at, OptIfName, name);
            at = WriteStringOption(span, at, OptIfDescription, description);
            at = WriteEndOfOptions(span, at);
            var length = FinishBlock(span, InterfaceDescriptionType, at);
            _interfaceBlocks.Add(span[..length].ToArray());

            // An IDB must not be lost: the blocks after it refer to it. Take a new chunk even past the pool.
            var rotate = _options.MaxFileBytes > 0 && _fileHasPackets && _fileBytes + length > _options.MaxFileBytes;
            if (!_disposed && (rotate || _current.Free < length))
            {
                SealCurrent(_free.Count > 0 ? _free.Pop() : new Chunk(_chunkBytes));
                if (rotate)
                {
                    // The new file's header repeats every IDB, this one included.
                    StartNextFile();
                    return _interfaceBlocks.Count - 1;
                }
            }

            if (!_disposed)
            {
                AppendBlock(span[..length], isPacket: false);
            }

            return _interfaceBlocks.Count - 1;
        }
    }

    /// <inheritdoc/>
    public void Write(int interfaceId, ReadOnlySpan<byte> frame, CaptureDirection direction, DateTimeOffset timestamp)
    {
        var captured = Math.Min(frame.Length, _options.SnapLength);
        var micros = (ulong)((timestamp.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10);
        var wake = false;
        lock (_lock)
        {
            if (_disposed || _outputError is not null)
            {
                _framesDropped++;
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
            var length = FinishBlock(span, EnhancedPacketType, at);

            var rotate = _options.MaxFileBytes > 0 && _fileHasPackets && _fileBytes + length > _options.MaxFileBytes;
            if (_current.Free < length + (rotate ? HeaderBytes() : 0))
            {
                if (_free.Count == 0)
                {
                    _framesDropped++;
                    return;
                }

                SealCurrent(_free.Pop());
                wake = true;
            }

            if (rotate)
            {
                StartNextFile();
            }

            AppendBlock(span[..length], isPacket: true);
            _framesWritten++;
            if (captured < frame.Length)
            {
                _framesTruncated++;
            }
        }

        if (wake)
        {
            _wake.Set();
        }
    }

    /// <summary>Asks the writer thread to push what is buffered now (it also does so every flush interval).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            if (_disposed || _current.Length == 0 || _free.Count == 0)
            {
                return;
            }

            SealCurrent(_free.Pop());
        }

        _wake.Set();
    }

    /// <summary>Writes out everything buffered (waiting up to 10 seconds for the output) and closes it.</summary>
    public void Dispose() => Dispose(TimeSpan.FromSeconds(10));

    /// <summary>Writes out everything buffered (waiting up to <paramref name="timeout"/> for the output) and closes it.</summary>
    public void Dispose(TimeSpan timeout)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (_current.Length > 0)
            {
                _full.Enqueue(_current);
            }
        }

        _stopping = true;
        _wake.Set();
        if (!_thread.Join(timeout))
        {
            // The output is stuck (a reader that neither reads nor goes away): leave the thread, count the rest.
            lock (_lock)
            {
                while (_full.TryDequeue(out var stuck))
                {
                    Discard(stuck);
                }
            }

            Volatile.Write(ref _outputError, "the output did not take the last frames in time");
            return;
        }

        _wake.Dispose();
        if (_ownsStream)
        {
            try
            {
                _stream.Dispose();
            }
            catch (IOException)
            {
                // The reader of a pipe went away; the loss is already counted.
            }
        }
    }

    private void WriteLoop()
    {
        var batch = new List<Chunk>();
        while (true)
        {
            var stopping = _stopping;
            if (!stopping)
            {
                _wake.WaitOne(_options.FlushInterval);
            }

            lock (_lock)
            {
                if (!_disposed && _full.Count == 0 && _current.Length > 0 && _free.Count > 0)
                {
                    SealCurrent(_free.Pop());
                }

                batch.AddRange(_full);
                _full.Clear();
            }

            foreach (var chunk in batch)
            {
                WriteChunk(chunk);
            }

            if (batch.Count > 0 && _outputError is null)
            {
                try
                {
                    _stream.Flush();
                }
                catch (Exception ex) when (IsOutputFailure(ex))
                {
                    Fail(ex);
                }
            }

            lock (_lock)
            {
                foreach (var chunk in batch)
                {
                    chunk.Reset();
                    _free.Push(chunk);
                }
            }

            batch.Clear();
            if (stopping)
            {
                return;
            }
        }
    }

    private void WriteChunk(Chunk chunk)
    {
        if (_outputError is not null)
        {
            Discard(chunk);
            return;
        }

        try
        {
            var start = 0;
            foreach (var fileStart in chunk.FileStarts)
            {
                _stream.Write(chunk.Data, start, fileStart - start);
                _stream.Flush();
                if (_ownsStream)
                {
                    _stream.Dispose();
                }

                _stream = _openNext!(FilesOpened);
                Interlocked.Increment(ref _filesOpened);
                start = fileStart;
            }

            _stream.Write(chunk.Data, start, chunk.Length - start);
        }
        catch (Exception ex) when (IsOutputFailure(ex))
        {
            Fail(ex);
            Discard(chunk);
        }
    }

    /// <summary>The output cannot take more: a write or flush failed, the next rotated file could not be opened, or the stream was closed.</summary>
    private static bool IsOutputFailure(Exception ex) =>
        IoErrors.IsFileError(ex) || ex is ObjectDisposedException or NotSupportedException;

    private void Fail(Exception ex) => Interlocked.CompareExchange(ref _outputError, ex.Message, null);

    /// <summary>Counts the frames of a chunk that will never reach the output.</summary>
    private void Discard(Chunk chunk)
    {
        Interlocked.Add(ref _framesWritten, -chunk.Frames);
        Interlocked.Add(ref _framesDropped, chunk.Frames);
        chunk.Frames = 0;
    }

    /// <summary>Queues the current chunk for the writer thread and continues in <paramref name="next"/>. Caller holds the lock.</summary>
    private void SealCurrent(Chunk next)
    {
        _full.Enqueue(_current);
        _current = next;
    }

    /// <summary>Bytes at the head of each file: the SHB and every IDB. Caller holds the lock.</summary>
    private int HeaderBytes()
    {
        var total = 512;
        foreach (var block in _interfaceBlocks)
        {
            total += block.Length;
        }

        return total;
    }

    /// <summary>Starts the next file in the current chunk: SHB and every IDB. Caller holds the lock.</summary>
    private void StartNextFile()
    {
        _current.FileStarts.Add(_current.Length);
        _fileBytes = 0;
        _fileHasPackets = false;
        var header = new byte[512];
        AppendBlock(header.AsSpan(0, BuildSectionHeader(header)), isPacket: false);
        foreach (var block in _interfaceBlocks)
        {
            if (_current.Free < block.Length)
            {
                SealCurrent(_free.Count > 0 ? _free.Pop() : new Chunk(_chunkBytes));
            }

            AppendBlock(block, isPacket: false);
        }
    }

    private void AppendBlock(ReadOnlySpan<byte> block, bool isPacket)
    {
        block.CopyTo(_current.Data.AsSpan(_current.Length));
        _current.Length += block.Length;
        _fileBytes += block.Length;
        if (isPacket)
        {
            _current.Frames++;
            _fileHasPackets = true;
        }
    }

    private static int BuildSectionHeader(byte[] buffer)
    {
        var span = buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span[8..], ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(span[12..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(span[14..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], -1);
        var at = WriteStringOption(span, 24, OptShbUserAppl, "NetWire");
        at = WriteStringOption(span, at, OptComment, "frames crossing NetWire wires; inbound = from the guest");
        at = WriteEndOfOptions(span, at);
        return FinishBlock(span, SectionHeaderType, at);
    }

    private static int FinishBlock(Span<byte> span, uint type, int bodyEnd)
    {
        var total = bodyEnd + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(span, type);
        BinaryPrimitives.WriteUInt32LittleEndian(span[4..], (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(span[bodyEnd..], (uint)total);
        return total;
    }

    private static int WriteStringOption(Span<byte> span, int at, ushort code, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var length = Math.Min(bytes.Length, MaxOptionText);
        bytes.AsSpan(0, length).CopyTo(span[(at + 4)..]);
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

    private static Stream Open(string path) => path == "-"
        ? Console.OpenStandardOutput()
        : new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1, FileOptions.None);

    /// <summary>A piece of the output buffer: blocks in order, how many are packets, and where new files start in it.</summary>
    private sealed class Chunk(int size)
    {
        public byte[] Data { get; } = new byte[size];

        public int Length { get; set; }

        public long Frames { get; set; }

        public List<int> FileStarts { get; } = [];

        public int Free => Data.Length - Length;

        public void Reset()
        {
            Length = 0;
            Frames = 0;
            FileStarts.Clear();
        }
    }
}

/// <summary>How a <see cref="PcapNgWriter"/> keeps frames: snap length, rotation, buffering.</summary>
public sealed record PcapNgWriterOptions
{
    /// <summary>Bytes kept of each frame (the rest is cut; the original length is recorded). 1 to 262144.</summary>
    public int SnapLength { get; init; } = PcapNgWriter.MaxSnapLength;

    /// <summary>Start a new file before one would grow past this many bytes; 0 for one file.</summary>
    public long MaxFileBytes { get; init; }

    /// <summary>Bytes buffered for a slow output before frames are dropped (and counted).</summary>
    public int BufferBytes { get; init; } = 8 << 20;

    /// <summary>Longest time a frame waits in the buffer before it is written and flushed.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(100);
}
