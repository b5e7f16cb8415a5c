using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using Xunit;

namespace NetWire.Testing;

/// <summary>
/// A byte-level SPICE client for tests: it sends exactly what a test says, and reads with a
/// generous hang guard (a read that never completes fails the test instead of hanging it).
/// </summary>
internal sealed class RawSpiceClient : IAsyncDisposable
{
    /// <summary>How long a read may wait before the test fails as "server hung".</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(20);

    /// <summary>spice-gtk's common caps: AUTH_SELECTION + MINI_HEADER (+ AUTH_SPICE here for clarity).</summary>
    public const uint GtkCommonCaps = 0x0D;

    /// <summary>spice-gtk's main caps: all four.</summary>
    public const uint GtkMainCaps = 0x0F;

    private readonly Socket _socket;
    private readonly Stream _stream;

    private RawSpiceClient(Socket socket, Stream? stream = null)
    {
        _socket = socket;
        _stream = stream ?? new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>The connection's socket (to reset it, read its addresses).</summary>
    public Socket Socket => _socket;

    /// <summary>What the client writes and reads: the socket's stream, or TLS over it.</summary>
    public Stream Stream => _stream;

    public bool MiniHeader { get; private set; }

    public static async Task<RawSpiceClient> ConnectAsync(IPEndPoint server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server, TestContext.Current.CancellationToken);
        return new RawSpiceClient(socket);
    }

    /// <summary>Connects and completes a TLS handshake, checking the server's certificate against <paramref name="caFile"/>.</summary>
    public static async Task<RawSpiceClient> ConnectTlsAsync(IPEndPoint server, string caFile)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(server, TestContext.Current.CancellationToken);
        var settings = new NetWire.Core.Tls.TlsSettings(NetWire.Core.Tls.X509Credentials.LoadAuthorities(caFile, DateTimeOffset.UtcNow));
        var tls = await NetWire.Core.Tls.TlsHandshake.ConnectAsync(new NetworkStream(socket, ownsSocket: true), server.Address.ToString(), settings, TestContext.Current.CancellationToken);
        return new RawSpiceClient(socket, tls);
    }

    /// <summary>A link header + link message as spice-gtk builds it.</summary>
    public static byte[] LinkBytes(uint connectionId, byte channelType, byte channelId = 0, uint commonCaps = GtkCommonCaps, uint[]? channelCaps = null)
    {
        var mess = new SpiceLinkMess(connectionId, channelType, channelId, [commonCaps], channelCaps ?? (channelType == 1 ? [GtkMainCaps] : []));
        var bytes = new byte[SpiceLinkHeader.Length + mess.Length];
        SpiceLinkHeader.ForServer((uint)mess.Length).WriteTo(bytes);
        mess.WriteTo(bytes.AsSpan(SpiceLinkHeader.Length));
        return bytes;
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes) =>
        await _stream.WriteAsync(bytes, TestContext.Current.CancellationToken);

    /// <summary>Reads exactly <paramref name="count"/> bytes; null when the server closed first.</summary>
    public async Task<byte[]?> ReadExactlyOrNullAsync(int count)
    {
        var buffer = new byte[count];
        using var guard = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        guard.CancelAfter(HangGuard);
        var read = 0;
        try
        {
            while (read < count)
            {
                var n = await _stream.ReadAsync(buffer.AsMemory(read), guard.Token);
                if (n == 0)
                {
                    return null;
                }

                read += n;
            }
        }
        catch (IOException)
        {
            return null;
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"server neither answered nor closed within {HangGuard.TotalSeconds} s");
        }

        return buffer;
    }

    public async Task<byte[]> ReadExactlyAsync(int count) =>
        await ReadExactlyOrNullAsync(count) ?? throw new EndOfStreamException($"server closed before {count} bytes");

    /// <summary>True when the server closes the connection (reads to EOF, discarding), false never: a hang throws.</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        var buffer = new byte[4096];
        using var guard = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        guard.CancelAfter(HangGuard);
        try
        {
            while (await _stream.ReadAsync(buffer, guard.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
            // Reset counts as closed.
        }
        catch (OperationCanceledException) when (!TestContext.Current.CancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"server did not close within {HangGuard.TotalSeconds} s");
        }

        return true;
    }

    /// <summary>Reads the 194-byte error reply and returns its error code.</summary>
    public async Task<SpiceLinkErr> ReadErrorReplyAsync()
    {
        var reply = await ReadExactlyAsync(SpiceLinkReply.ErrorLength);
        Assert.True(SpiceLinkHeader.TryParse(reply, out var header));
        Assert.Equal(SpiceLinkHeader.RedqMagic, header.Magic);
        Assert.Equal((uint)SpiceLinkReply.FixedLength, header.Size);
        Assert.True(reply.AsSpan(20).IndexOfAnyExcept((byte)0) < 0, "error reply: everything after the error code is zero");
        return (SpiceLinkErr)BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(16));
    }

    /// <summary>Reads an OK reply; returns the public key and the caps words.</summary>
    public async Task<(byte[] PublicKey, uint[] Common, uint[] Channel)> ReadOkReplyAsync()
    {
        var head = await ReadExactlyAsync(SpiceLinkHeader.Length);
        Assert.True(SpiceLinkHeader.TryParse(head, out var header));
        Assert.Equal(SpiceLinkHeader.RedqMagic, header.Magic);
        Assert.Equal(2u, header.MajorVersion);
        var body = await ReadExactlyAsync((int)header.Size);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(body));
        var key = body.AsSpan(4, SpiceLinkReply.PublicKeyLength).ToArray();
        var nCommon = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(166));
        var nChannel = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(170));
        var offset = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(174));
        Assert.Equal((uint)SpiceLinkReply.FixedLength, offset);
        Assert.Equal(header.Size, SpiceLinkReply.FixedLength + (4 * (nCommon + nChannel)));
        var common = new uint[nCommon];
        var channel = new uint[nChannel];
        for (var i = 0; i < nCommon; i++)
        {
            common[i] = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(178 + (4 * i)));
        }

        for (var i = 0; i < nChannel; i++)
        {
            channel[i] = BinaryPrimitives.ReadUInt32LittleEndian(body.AsSpan(178 + (4 * (int)nCommon) + (4 * i)));
        }

        return (key, common, channel);
    }

    /// <summary>Sends mechanism 1 (when <paramref name="selectAuth"/>) and the ticket for <paramref name="password"/>.</summary>
    public async Task SendTicketAsync(byte[] publicKey, string password, bool selectAuth = true)
    {
        var bytes = new List<byte>();
        if (selectAuth)
        {
            bytes.AddRange([1, 0, 0, 0]);
        }

        var plain = new byte[System.Text.Encoding.UTF8.GetByteCount(password) + 1];
        System.Text.Encoding.UTF8.GetBytes(password, plain);
        bytes.AddRange(TicketAuthority.EncryptTicket(publicKey, plain));
        await SendAsync(bytes.ToArray());
    }

    public async Task<SpiceLinkErr> ReadResultAsync()
    {
        var result = await ReadExactlyAsync(4);
        return (SpiceLinkErr)BinaryPrimitives.ReadUInt32LittleEndian(result);
    }

    /// <summary>Full link: returns the link result.</summary>
    public async Task<SpiceLinkErr> LinkAsync(uint connectionId, byte channelType, string password, uint commonCaps = GtkCommonCaps, uint[]? channelCaps = null, byte channelId = 0)
    {
        await SendAsync(LinkBytes(connectionId, channelType, channelId, commonCaps, channelCaps));
        var (key, common, _) = await ReadOkReplyAsync();
        Assert.Equal(SpiceCaps.ServerCommonWord, common[0]);
        await SendTicketAsync(key, password, (commonCaps & 1) != 0);
        var result = await ReadResultAsync();
        MiniHeader = (commonCaps & (1u << SpiceCaps.MiniHeader)) != 0;
        return result;
    }

    public async Task<(DataHeader Header, byte[] Body)> ReadMessageAsync()
    {
        var head = await ReadExactlyAsync(DataHeader.LengthFor(MiniHeader));
        Assert.True(DataHeader.TryParse(head, MiniHeader, out var header));
        var body = header.Size == 0 ? [] : await ReadExactlyAsync((int)header.Size);
        return (header, body);
    }

    /// <summary>Reads messages until one of <paramref name="type"/> arrives (answering PINGs on the way).</summary>
    public async Task<(DataHeader Header, byte[] Body)> ReadUntilAsync(ushort type)
    {
        while (true)
        {
            var message = await ReadMessageAsync();
            if (message.Header.Type == type)
            {
                return message;
            }

            if (message.Header.Type == 4)
            {
                await SendMessageAsync(3, message.Body.AsSpan(0, 12).ToArray());
            }
        }
    }

    private ulong _serial;

    public async Task SendMessageAsync(ushort type, byte[] body, uint? sizeOverride = null)
    {
        var head = new byte[DataHeader.FullLength];
        var length = new DataHeader(++_serial, type, sizeOverride ?? (uint)body.Length).WriteTo(head, MiniHeader);
        await SendAsync(head.AsMemory(0, length));
        if (body.Length > 0)
        {
            await SendAsync(body);
        }
    }

    public ValueTask DisposeAsync() => _stream.DisposeAsync();
}
