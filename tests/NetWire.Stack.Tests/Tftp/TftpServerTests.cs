using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests.Tftp;

/// <summary>
/// The TFTP server against a guest played by the test, with no sockets: option negotiation,
/// whole transfers (lock-step and windowed, the last block short or empty), retransmission on
/// timeout, and bad input answered with the right ERROR and counted.
/// </summary>
public sealed class TftpServerTests : IDisposable
{
    private const ushort GuestPort = 2001;
    private readonly string _root = Directory.CreateTempSubdirectory("nwtftp-").FullName;
    private readonly string _outside = Directory.CreateTempSubdirectory("nwtftp-out-").FullName;
    private readonly CollectingReceiver _receiver = new();
    private readonly FakeTimeProvider _time = new();
    private readonly Gateway _gateway;

    public TftpServerTests()
    {
        File.WriteAllBytes(Path.Combine(_root, "kernel"), Pattern(100_000));
        File.WriteAllBytes(Path.Combine(_root, "exact"), Pattern(1024));
        Directory.CreateDirectory(Path.Combine(_root, "sub"));
        File.WriteAllText(Path.Combine(_root, "sub", "boot.ipxe"), "#!ipxe\n");
        File.WriteAllText(Path.Combine(_outside, "secret"), "secret");
        File.CreateSymbolicLink(Path.Combine(_root, "escape"), Path.Combine(_outside, "secret"));
        Directory.CreateSymbolicLink(Path.Combine(_root, "outdir"), _outside);
        File.CreateSymbolicLink(Path.Combine(_root, "inside"), Path.Combine(_root, "exact"));
        _gateway = new Gateway(new GatewayOptions { TftpRoot = _root }, new FramePool(), _time, NullLogger.Instance);
        _gateway.Attach(_receiver, new WireCounters(), CancellationToken.None);
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
        Directory.Delete(_outside, recursive: true);
    }

    [Fact]
    public void ReadWithOptions_OacksThenSendsTheWholeFile()
    {
        Send(69, Rrq("kernel", "blksize", "1432", "tsize", "0"));
        var (port, oack) = Receive();
        Assert.Equal(6, Opcode(oack));
        Assert.Equal(["blksize", "1432", "tsize", "100000"], Strings(oack));
        Assert.InRange(port, 50000, 59999);

        var received = Download(port, 1432, window: 1);
        Assert.Equal(Pattern(100_000), received);
        Assert.Equal(0, _gateway.Tftp!.Count);
        Assert.Equal(1, _gateway.Counters.TftpTransfers);
    }

    [Fact]
    public void ReadWithoutOptions_SendsBlock1At512Bytes_AndAnEmptyLastBlockAfterAnExactMultiple()
    {
        Send(69, Rrq("exact"));
        var (port, first) = Receive();
        Assert.Equal(3, Opcode(first));
        Assert.Equal(1, Block(first));
        Assert.Equal(512, first.Length - 4);
        Send(port, Ack(1));
        var (_, second) = Receive();
        Assert.Equal(2, Block(second));
        Send(port, Ack(2));
        var (_, last) = Receive();
        Assert.Equal(3, Block(last));
        Assert.Equal(4, last.Length);
        Send(port, Ack(3));
        Assert.Equal(0, _gateway.Tftp!.Count);
    }

    [Fact]
    public void Windowsize_SendsAWindowPerAck_AndASymlinkInsideTheFolderIsServed()
    {
        Send(69, Rrq("kernel", "blksize", "8192", "windowsize", "4"));
        var (port, oack) = Receive();
        // The gateway does not fragment: 1500 - 20 - 8 - 4.
        Assert.Equal(["blksize", "1468", "windowsize", "4"], Strings(oack));
        Assert.Equal(Pattern(100_000), Download(port, 1468, window: 4));

        Send(69, Rrq("inside"));
        var (_, data) = Receive();
        Assert.Equal(Pattern(1024)[..512], data[4..]);
    }

    [Fact]
    public void UnansweredBlock_IsSentAgainAfterTheTimeout_AndTheTransferGivesUpAfterFiveTries()
    {
        Send(69, Rrq("sub/boot.ipxe", "timeout", "2"));
        var (port, _) = Receive();
        Send(port, Ack(0));
        var (_, data) = Receive();
        Assert.Equal("#!ipxe\n", Encoding.ASCII.GetString(data, 4, data.Length - 4));

        Tick(TimeSpan.FromMilliseconds(1900));
        Assert.Empty(_receiver.Frames);
        Tick(TimeSpan.FromMilliseconds(200));
        Assert.Equal(data, Receive().Payload);
        for (var i = 0; i < 4; i++)
        {
            Tick(TimeSpan.FromSeconds(2.1));
            Assert.Equal(data, Receive().Payload);
        }

        Tick(TimeSpan.FromSeconds(2.1));
        Assert.Empty(_receiver.Frames);
        Assert.Equal(0, _gateway.Tftp!.Count);
    }

    [Theory]
    [InlineData("../etc/passwd", 2)]
    [InlineData("/etc/passwd", 2)]
    [InlineData("sub/../../etc/passwd", 2)]
    [InlineData("escape", 2)]
    [InlineData("outdir/secret", 2)]
    [InlineData("sub", 2)]
    [InlineData("missing", 1)]
    public void NamesOutsideTheFolderOrMissing_AreRefusedWithAnError(string name, int code)
    {
        Send(69, Rrq(name));
        var (port, error) = Receive();
        Assert.Equal(69, port);
        Assert.Equal(5, Opcode(error));
        Assert.Equal(code, Block(error));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.TftpRefused));
        Assert.Equal(0, _gateway.Tftp!.Count);
    }

    [Fact]
    public void BadRequests_GetTheirErrors_AndAnUnknownOptionIsLeftOut()
    {
        var write = Rrq("kernel");
        write[1] = 2;
        Send(69, write);
        Assert.Equal((5, 2), Error());

        var oversized = Rrq(new string('a', 300), "x", new string('b', 300));
        Send(69, oversized);
        Assert.Equal((5, 4), Error());

        Send(69, Encoding.ASCII.GetBytes("\0\u0001kernel\0octet"));
        Assert.Equal((5, 4), Error());
        Send(69, Rrq("kernel", "blksize"));
        Assert.Equal((5, 4), Error());
        Send(69, Rrq("kernel", "blksize", "7"));
        Assert.Equal((5, 8), Error());
        Send(69, Rrq("kernel", "blksize", "x"));
        Assert.Equal((5, 8), Error());
        Send(69, [0, 1]);
        Assert.Equal((5, 4), Error());
        Send(69, [0]);
        Assert.Equal((5, 4), Error());
        Send(69, Request("kernel", "netascii"));
        Assert.Equal((5, 4), Error());
        Send(69, Ack(1));
        Assert.Equal((5, 4), Error());
        var error = Ack(0);
        error[1] = 5;
        Send(69, error);
        Assert.Empty(_receiver.Frames);
        Assert.Equal(11, _gateway.Counters.Drops(StackDrop.TftpRefused));

        Send(69, Rrq("exact", "foo", "bar", "TSIZE", "0"));
        var (_, oack) = Receive();
        Assert.Equal(["tsize", "1024"], Strings(oack));
    }

    [Fact]
    public void RandomRequests_NeverThrow_AndEveryOneIsAnsweredOrCounted()
    {
        var random = new Random(18);
        for (var i = 0; i < 3000; i++)
        {
            var junk = new byte[random.Next(0, 600)];
            random.NextBytes(junk);
            if (junk.Length >= 2 && random.Next(2) == 0)
            {
                junk[0] = 0;
                junk[1] = (byte)random.Next(0, 7);
            }

            Send(69, junk);
            while (_receiver.Frames.TryDequeue(out _))
            {
            }
        }

        Assert.True(_gateway.Counters.Drops(StackDrop.TftpRefused) > 2000);
    }

    private byte[] Download(ushort port, int blockSize, int window)
    {
        var data = new MemoryStream();
        Send(port, Ack(0));
        var expected = 1;
        while (true)
        {
            var last = false;
            for (var i = 0; i < window && !last; i++)
            {
                var (from, packet) = Receive(allowMore: true);
                Assert.Equal(port, from);
                Assert.Equal(3, Opcode(packet));
                Assert.Equal((ushort)expected, Block(packet));
                data.Write(packet, 4, packet.Length - 4);
                last = packet.Length - 4 < blockSize;
                expected++;
            }

            Assert.Empty(_receiver.Frames);
            Send(port, Ack((ushort)(expected - 1)));
            if (last)
            {
                return data.ToArray();
            }
        }
    }

    private (int Opcode, int Code) Error()
    {
        var (_, packet) = Receive();
        return (Opcode(packet), Block(packet));
    }

    private void Send(ushort port, byte[] payload)
    {
        lock (_gateway.Sync)
        {
            _gateway.OnGuestFrame(BuildUdp(GuestIp, GuestPort, GatewayIp, port, payload));
            _gateway.EndOfBatch();
        }
    }

    private void Tick(TimeSpan step)
    {
        _time.Advance(step);
        lock (_gateway.Sync)
        {
            _gateway.OnTimer();
        }
    }

    private (ushort Port, byte[] Payload) Receive(bool allowMore = false)
    {
        Assert.True(_receiver.Frames.TryDequeue(out var frame), "expected a frame from the gateway");
        if (!allowMore)
        {
            Assert.Empty(_receiver.Frames);
        }

        var (source, destination, protocol, udp) = ParseIpv4(frame);
        Assert.Equal((GatewayIp, GuestIp, (byte)17), (source, destination, protocol));
        Assert.True(UdpPacket.TryParse(udp, out var datagram));
        Assert.Equal(GuestPort, datagram.DestinationPort);
        return (datagram.SourcePort, datagram.Payload.ToArray());
    }

    /// <summary>A read request in octet mode with <paramref name="options"/> as given (an odd count leaves a value out).</summary>
    private static byte[] Rrq(string name, params string[] options) => Request(name, "octet", options);

    private static byte[] Request(string name, string mode, params string[] options)
    {
        var text = new StringBuilder().Append(name).Append('\0').Append(mode).Append('\0');
        foreach (var field in options)
        {
            text.Append(field).Append('\0');
        }

        return [0, 1, .. Encoding.ASCII.GetBytes(text.ToString())];
    }

    private static byte[] Ack(ushort block)
    {
        var ack = new byte[4];
        ack[1] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(ack.AsSpan(2), block);
        return ack;
    }

    private static int Opcode(byte[] packet) => BinaryPrimitives.ReadUInt16BigEndian(packet);

    private static int Block(byte[] packet) => BinaryPrimitives.ReadUInt16BigEndian(packet.AsSpan(2));

    private static string[] Strings(byte[] packet) => Encoding.ASCII.GetString(packet, 2, packet.Length - 3).Split('\0');

    private static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)(i * 7 + (i >> 8));
        }

        return bytes;
    }
}
