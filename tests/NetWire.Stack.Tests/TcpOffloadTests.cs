using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// The TCP endpoint with a guest end that takes offloads (a TAP with a virtio-net header): a
/// 64 KiB segment from the guest whose checksum its kernel left undone is one segment, and data
/// from the host leaves as segments of up to 64 KiB with a GSO request and the checksum left to
/// the device; towards an end that takes none, segments stay within the MSS with full checksums.
/// </summary>
public sealed class TcpOffloadTests : IDisposable
{
    private const uint GuestIsn = 7000;
    private const ushort GuestPort = 42000;
    private readonly OffloadReceiver _receiver = new();
    private readonly GatewayRun _run;
    private readonly FramePool _pool = new();
    private readonly Gateway _gateway;

    public TcpOffloadTests()
    {
        _run = new GatewayRun(new GatewayOptions { AllowHostLoopback = true }, _receiver, _pool);
        _gateway = _run.Gateway;
    }

    public void Dispose() => _run.Dispose();

    [Fact]
    public async Task LargeSegmentWithItsChecksumLeftUndone_IsOneSegment_AndItsBytesReachTheHost()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        var (accepted, serverIsn) = await EstablishAsync(listener, port);
        using var host = accepted;

        var payload = new byte[60_000];
        new Random(60).NextBytes(payload);
        var bytes = BuildTcpWithChecksumLeftUndone(port, GuestIsn + 1, serverIsn + 1, payload);

        // Handed on as plain, the undone checksum is a bad one.
        SendBatch(_pool.Rent(bytes));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadChecksum));
        Assert.True(_receiver.Frames.IsEmpty);

        var frame = _pool.Rent(bytes);
        frame.Offload = new FrameOffload { NeedsChecksum = true, ChecksumStart = Gateway.Ipv4PayloadOffset, ChecksumOffset = 16 };
        SendBatch(frame);
        var (ack, _, _) = Assert.Single(_receiver.Take());
        Assert.Equal(GuestIsn + 1 + (uint)payload.Length, ParseTcp(ack).Header.AckNumber);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadChecksum));
        Assert.Equal(payload, await ReceiveAsync(host, payload.Length));
    }

    [Fact]
    public async Task HostData_TowardsAnEndTakingTso_LeavesAsLargeSegments_ThatFinishIntoTheSameBytes()
    {
        _receiver.Accepted = WireOffloads.All;
        var (sent, segments) = await DownloadAsync(300_000);
        Assert.Contains(segments, s => s.Offload.Gso == GsoKind.TcpV4);
        foreach (var (frame, offload, data) in segments)
        {
            Assert.True(offload.NeedsChecksum, "the checksum is left to the device");
            Assert.True(data.Length <= 65_535 - 80, $"{data.Length} bytes of data in one segment");
            if (data.Length > 1460)
            {
                Assert.Equal(GsoKind.TcpV4, offload.Gso);
                Assert.Equal(1460, offload.SegmentSize);
                Assert.Equal(EthernetFrame.HeaderLength + Ipv4Packet.MinHeaderLength + TcpPacket.MinHeaderLength, offload.HeaderLength);
            }
            else
            {
                Assert.Equal(GsoKind.None, offload.Gso);
            }
        }

        Assert.Equal(sent, segments.SelectMany(s => s.Data).ToArray());
    }

    [Fact]
    public async Task HostData_TowardsAPlainEnd_LeavesInSegmentsOfTheMss_WithFullChecksums()
    {
        var (sent, segments) = await DownloadAsync(100_000);
        Assert.All(segments, s => Assert.True(s.Offload.IsPlain && s.Data.Length <= 1460, $"{s.Data.Length} bytes, {s.Offload}"));
        Assert.Equal(sent, segments.SelectMany(s => s.Data).ToArray());
    }

    /// <summary>Opens a connection, sends <paramref name="length"/> bytes from the host and collects the segments (checksums finished and verified), ACKing each.</summary>
    private async Task<(byte[] Sent, List<(byte[] Frame, FrameOffload Offload, byte[] Data)> Segments)> DownloadAsync(int length)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        var (host, serverIsn) = await EstablishAsync(listener, port, windowScale: 7);
        using var accepted = host;
        var payload = new byte[length];
        new Random(length).NextBytes(payload);
        await accepted.SendAsync(payload);

        var segments = new List<(byte[], FrameOffload, byte[])>();
        var got = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (got < length)
        {
            if (!_receiver.Frames.TryDequeue(out var item))
            {
                await Task.Delay(5, limit.Token);
                continue;
            }

            var (frame, offload, _) = item;
            if (offload.NeedsChecksum)
            {
                FinishChecksum(frame, offload);
            }

            var (header, data) = ParseTcp(frame);
            Assert.Equal(serverIsn + 1 + (uint)got, header.SequenceNumber);
            segments.Add((frame, offload, data));
            got += data.Length;
            SendBatch(_pool.Rent(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, serverIsn + 1 + (uint)got, TcpFlags.Ack, 8192, [])));
        }

        return (payload, segments);
    }

    private async Task<(Socket Accepted, uint ServerIsn)> EstablishAsync(TcpListener listener, ushort port, byte? windowScale = null)
    {
        SendBatch(_pool.Rent(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn, 0, TcpFlags.Syn, 65535, [], new TcpOptions { MaxSegmentSize = 1460, WindowScale = windowScale })));
        var accepted = await listener.AcceptSocketAsync();
        byte[]? synAck = null;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (synAck is null)
        {
            if (_receiver.Frames.TryDequeue(out var item))
            {
                synAck = item.Bytes;
                if (item.Offload.NeedsChecksum)
                {
                    FinishChecksum(synAck, item.Offload);
                }

                break;
            }

            await Task.Delay(5, limit.Token);
        }

        var (header, _) = ParseTcp(synAck);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, header.Flags);
        SendBatch(_pool.Rent(BuildTcp(GuestIp, GuestPort, GatewayIp, port, GuestIsn + 1, header.SequenceNumber + 1, TcpFlags.Ack, 65535, [])));
        return (accepted, header.SequenceNumber);
    }

    private void SendBatch(Frame frame)
    {
        lock (_gateway.Sync)
        {
            _gateway.OnGuestFrame(frame);
            frame.Dispose();
            _gateway.EndOfBatch();
        }
    }

    /// <summary>A TCP segment from the guest as its kernel hands it over with checksum offload: the field holds the pseudo-header sum only.</summary>
    private static byte[] BuildTcpWithChecksumLeftUndone(ushort port, uint seq, uint ack, ReadOnlySpan<byte> data)
    {
        var header = new TcpHeader(GuestPort, port, seq, ack, TcpFlags.Ack | TcpFlags.Psh, 65535);
        var tcp = new byte[header.Length + data.Length];
        data.CopyTo(tcp.AsSpan(header.Length));
        header.WriteToWithChecksumOffload(tcp, PseudoHeader.Ipv4(GuestIp, GatewayIp, IpProtocol.Tcp));
        return BuildIpv4(GuestIp, GatewayIp, (byte)IpProtocol.Tcp, tcp);
    }

    /// <summary>Finishes a checksum left to the device, as the device does (virtio 1.2 5.1.6.2).</summary>
    private static void FinishChecksum(byte[] frame, FrameOffload offload)
    {
        var field = offload.ChecksumStart + offload.ChecksumOffset;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(field), Checksum.Compute(frame.AsSpan(offload.ChecksumStart)));
    }

    private static async Task<byte[]> ReceiveAsync(Socket socket, int length)
    {
        var received = new byte[length];
        var got = 0;
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (got < length)
        {
            var n = await socket.ReceiveAsync(received.AsMemory(got), SocketFlags.None, limit.Token);
            Assert.NotEqual(0, n);
            got += n;
        }

        return received;
    }

    /// <summary>Collects what the gateway sends with the offloads it asked for; takes <see cref="Accepted"/>.</summary>
    private sealed class OffloadReceiver : IPacketReceiver
    {
        public ConcurrentQueue<(byte[] Bytes, FrameOffload Offload, int Length)> Frames { get; } = new();

        public WireOffloads Accepted { get; set; }

        public bool CanRecvPacket => true;

        public WireOffloads AcceptedOffloads => Accepted;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

        public void RecvPacket(Frame frame)
        {
            Frames.Enqueue((frame.Span.ToArray(), frame.Offload, frame.Length));
            frame.Dispose();
        }

        public List<(byte[] Bytes, FrameOffload Offload, int Length)> Take()
        {
            var taken = new List<(byte[], FrameOffload, int)>();
            while (Frames.TryDequeue(out var item))
            {
                taken.Add(item);
            }

            return taken;
        }
    }
}
