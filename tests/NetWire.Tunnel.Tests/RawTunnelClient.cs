using System.Buffers.Binary;
using System.Net.Sockets;
using NetWire.Spice.Channels;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using NetWire.Tunnel.Client;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// A tunnel channel driven message by message: main linked (and held open) with the real client
/// link code, then the tunnel linked; every byte the test sends is its own.
/// </summary>
internal sealed class RawTunnelClient : IAsyncDisposable
{
    private static readonly TimeSpan s_guard = TimeSpan.FromSeconds(30);
    private readonly Stream _main;
    private readonly Stream _tunnel;
    private readonly bool _mini;

    private RawTunnelClient(Stream main, Stream tunnel, bool mini)
    {
        _main = main;
        _tunnel = tunnel;
        _mini = mini;
    }

    /// <summary>Links main and the tunnel, and reads SET_ACK and INIT.</summary>
    public static async Task<RawTunnelClient> ConnectAsync(TunnelServer server)
    {
        var password = System.Text.Encoding.UTF8.GetBytes(TunnelServer.Password);
        using var timeout = new CancellationTokenSource(s_guard);
        var (main, mainMini) = await SpiceClientLink.LinkAsync("127.0.0.1", server.EndPoint.Port, 0, SpiceChannelType.Main, password, timeout.Token);
        var connection = new MessageConnection(main, mainMini, 64 * 1024, 16);
        uint sessionId;
        while (true)
        {
            var header = await connection.ReadAsync(timeout.Token);
            if (header.Type == MainMessages.Init)
            {
                sessionId = BinaryPrimitives.ReadUInt32LittleEndian(connection.Body);
                break;
            }
        }

        var (tunnel, mini) = await SpiceClientLink.LinkAsync("127.0.0.1", server.EndPoint.Port, sessionId, SpiceChannelType.Tunnel, password, timeout.Token);
        var client = new RawTunnelClient(main, tunnel, mini);
        var setAck = await client.ReadAsync();
        Assert.Equal(CommonMessages.SetAck, setAck.Type);
        client.Init = await client.ReadAsync();
        Assert.Equal(TunnelMessages.Init, client.Init.Type);
        return client;
    }

    /// <summary>The INIT message read at connect.</summary>
    public (ushort Type, byte[] Body) Init { get; private set; }

    /// <summary>Sends one message; <paramref name="sizeOverride"/> lies about the body size in the header.</summary>
    public async Task SendAsync(ushort type, byte[] body, uint? sizeOverride = null)
    {
        var header = new byte[DataHeader.FullLength];
        var length = new DataHeader(1, type, sizeOverride ?? (uint)body.Length).WriteTo(header, _mini);
        await _tunnel.WriteAsync(header.AsMemory(0, length));
        await _tunnel.WriteAsync(body);
    }

    /// <summary>Reads the next message, skipping PINGs.</summary>
    public async Task<(ushort Type, byte[] Body)> ReadAsync()
    {
        using var timeout = new CancellationTokenSource(s_guard);
        var headerBytes = new byte[DataHeader.LengthFor(_mini)];
        await _tunnel.ReadExactlyAsync(headerBytes, timeout.Token);
        DataHeader.TryParse(headerBytes, _mini, out var header);
        var body = new byte[header.Size];
        await _tunnel.ReadExactlyAsync(body, timeout.Token);
        return (header.Type, body);
    }

    /// <summary>Reads until a message of <paramref name="type"/>.</summary>
    public async Task<byte[]> ReadUntilAsync(ushort type)
    {
        while (true)
        {
            var (t, body) = await ReadAsync();
            if (t == type)
            {
                return body;
            }
        }
    }

    /// <summary>True when the server closes the tunnel connection (reads to EOF or a reset).</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        using var timeout = new CancellationTokenSource(s_guard);
        var buffer = new byte[64 * 1024];
        try
        {
            while (await _tunnel.ReadAsync(buffer, timeout.Token) > 0)
            {
            }

            return true;
        }
        catch (IOException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _tunnel.DisposeAsync();
        await _main.DisposeAsync();
    }
}
