using System.Buffers.Binary;
using System.Net.Sockets;
using NetWire.Core.Packets;

namespace NetWire.Devices.Tests.Qemu;

/// <summary>Plays QEMU's side of the stream framing over a real socket.</summary>
internal sealed class StreamClient : IDisposable
{
    private readonly byte[] _pending = new byte[1 << 20];
    private int _pendingLength;

    private StreamClient(Socket socket)
    {
        Socket = socket;
    }

    public Socket Socket { get; }

    public static async Task<StreamClient> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        return new StreamClient(socket);
    }

    public static byte[] Frame(int length, int seq)
    {
        // The sequence number in the first four bytes of the source MAC; IEEE local experimental EtherType 1.
        var frame = new byte[length];
        new EthernetHeader(MacAddress.Broadcast, new MacAddress((ulong)(uint)seq << 16), (EtherType)0x88b5).WriteTo(frame);
        for (var i = 14; i < length; i++)
        {
            frame[i] = (byte)(seq + i);
        }

        return frame;
    }

    public static int SeqOf(byte[] frame) => BinaryPrimitives.ReadInt32BigEndian(frame.AsSpan(6));

    public Task SendFrameAsync(byte[] frame)
    {
        var bytes = new byte[4 + frame.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)frame.Length);
        frame.CopyTo(bytes, 4);
        return SendRawAsync(bytes);
    }

    public async Task SendRawAsync(byte[] bytes) => await Socket.SendAsync(bytes);

    /// <summary>Reads one length-prefixed frame, or null if the server closed the connection.</summary>
    public async Task<byte[]?> ReceiveFrameAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            if (_pendingLength >= 4)
            {
                var length = (int)BinaryPrimitives.ReadUInt32BigEndian(_pending);
                if (_pendingLength >= 4 + length)
                {
                    var frame = _pending.AsSpan(4, length).ToArray();
                    _pending.AsSpan(4 + length, _pendingLength - 4 - length).CopyTo(_pending);
                    _pendingLength -= 4 + length;
                    return frame;
                }
            }

            var n = await Socket.ReceiveAsync(_pending.AsMemory(_pendingLength), SocketFlags.None, cts.Token);
            if (n == 0)
            {
                return null;
            }

            _pendingLength += n;
        }
    }

    /// <summary>True if the server closes the connection within <paramref name="timeout"/>.</summary>
    public async Task<bool> ClosedByServerAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[65536];
        try
        {
            while (true)
            {
                var n = await Socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException)
        {
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose() => Socket.Dispose();
}
