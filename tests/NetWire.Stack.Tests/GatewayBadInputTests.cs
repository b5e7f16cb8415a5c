using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NetWire.Core.Frames;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using static NetWire.Stack.Tests.TestPackets;

namespace NetWire.Stack.Tests;

/// <summary>
/// Hostile guests: SYN floods, TCP and IPv4 option abuse, bad header lengths. Each is dropped and
/// counted by reason, and the tables stay within their bounds.
/// </summary>
public sealed class GatewayBadInputTests : IDisposable
{
    private readonly CollectingReceiver _receiver = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Gateway _gateway;

    public GatewayBadInputTests()
    {
        var options = new GatewayOptions { AllowHostLoopback = true, MaxHalfOpen = 8, MaxTcpConnections = 32 };
        _gateway = new Gateway(options, new FramePool(), new FakeTimeProvider(), NullLogger.Instance);
        _gateway.Attach(_receiver, new WireCounters(), _stop.Token);
    }

    public void Dispose()
    {
        _stop.Cancel();
        lock (_gateway.Sync)
        {
            _gateway.Shutdown();
        }

        _stop.Dispose();
    }

    private void Send(byte[] frame)
    {
        lock (_gateway.Sync)
        {
            _gateway.OnGuestFrame(frame);
            _gateway.EndOfBatch();
        }
    }

    private static byte[] Syn(ushort sourcePort, ushort port, ReadOnlySpan<byte> options = default) =>
        BuildSynWithRawOptions(GuestIp, sourcePort, GatewayIp, port, options);

    [Fact]
    public void SynFlood_HalfOpenTableStaysAtItsBound_RestCountedAsSynFlood()
    {
        // A real listener on host loopback: every host connect succeeds, and the guest never
        // completes a handshake, so each connection stays half-open.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start(256);
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        for (var i = 0; i < 500; i++)
        {
            Send(Syn((ushort)(20000 + i), port));
        }

        lock (_gateway.Sync)
        {
            Assert.Equal(8, _gateway.Tcp.HalfOpen);
            Assert.Equal(8, _gateway.Tcp.Count);
        }

        Assert.Equal(492, _gateway.Counters.Drops(StackDrop.SynFlood));

        // A retransmitted SYN of a connection already in the table is not another half-open entry.
        Send(Syn(20000, port));
        lock (_gateway.Sync)
        {
            Assert.Equal(8, _gateway.Tcp.Count);
        }
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0, 0 })]             // MSS with length 0: a parser that trusts it never advances
    [InlineData(new byte[] { 1, 1, 2, 8 })]             // MSS claiming 8 bytes where 2 are left
    [InlineData(new byte[] { 3, 40, 7, 0 })]            // window scale claiming 40 bytes
    [InlineData(new byte[] { 1, 1, 1, 8, 1, 0, 0, 0 })] // an option of length 1
    public void SynWithMalformedOptions_IsDroppedAsBadOptions(byte[] options)
    {
        Send(Syn(30000, 80, options));
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadOptions));
        Assert.Empty(_receiver.Frames);
        lock (_gateway.Sync)
        {
            Assert.Equal(0, _gateway.Tcp.Count);
        }
    }

    [Fact]
    public void SynWithFortyBytesOfNops_IsNotAnError()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = (ushort)((IPEndPoint)listener.LocalEndpoint).Port;
        var options = new byte[40];
        options.AsSpan().Fill(1);
        Send(Syn(30001, port, options));
        Assert.Equal(0, _gateway.Counters.Drops(StackDrop.BadOptions));
        lock (_gateway.Sync)
        {
            Assert.Equal(1, _gateway.Tcp.Count);
        }
    }

    [Fact]
    public void Ipv4Options_AreSkipped_AndTheEchoIsAnsweredWithout()
    {
        var frame = WithIpOptions(BuildIcmpEcho(GuestIp, GatewayIp), [1, 1, 1, 1, 7, 7, 4, 0]);
        Send(frame);
        Assert.True(_receiver.Frames.TryDequeue(out var reply));
        var (source, _, protocol, icmp) = ParseIpv4(reply);
        Assert.True(Ipv4Packet.TryParse(reply.AsSpan(EthernetFrame.HeaderLength), out var ip));
        Assert.Equal(Ipv4Packet.MinHeaderLength, ip.HeaderLength);
        Assert.Equal(GatewayIp, source);
        Assert.Equal(1, protocol);
        Assert.True(IcmpPacket.TryParse(icmp, out var echo));
        Assert.Equal(IcmpType.EchoReply, echo.Type);
    }

    [Theory]
    [InlineData(0x44)] // IHL 4: shorter than the fixed header
    [InlineData(0x4f)] // IHL 15: 60 bytes, past the packet's total length
    [InlineData(0x65)] // not version 4
    public void BadIpv4HeaderLengthOrVersion_IsDroppedAsBadLength(byte versionAndIhl)
    {
        var frame = BuildIcmpEcho(GuestIp, GatewayIp);
        frame[EthernetFrame.HeaderLength] = versionAndIhl;
        FixIpChecksum(frame, Ipv4Packet.MinHeaderLength);
        Send(frame);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadLength));
        Assert.Empty(_receiver.Frames);
    }

    [Fact]
    public void UdpLengthFieldPastThePacket_IsDroppedAsBadLength()
    {
        var frame = BuildUdp(GuestIp, 5000, GatewayIp, 9, [1, 2, 3, 4]);
        frame[Gateway.Ipv4PayloadOffset + 4] = 400 >> 8; // the length field: 400 bytes, past the datagram
        frame[Gateway.Ipv4PayloadOffset + 5] = 400 & 0xff;
        Send(frame);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadLength));
        Assert.Equal(0, _gateway.Udp.Count);
    }

    [Fact]
    public void EchoWithBadChecksum_IsDroppedAndNotRelayed()
    {
        var frame = BuildIcmpEcho(GuestIp, 0xC6336401);
        frame[Gateway.Ipv4PayloadOffset + 2] ^= 0x01;
        Send(frame);
        Assert.Equal(1, _gateway.Counters.Drops(StackDrop.BadChecksum));
        Assert.Equal(0, _gateway.Icmp.Count);
    }

    private static byte[] BuildIcmpEcho(uint source, uint destination)
    {
        var icmp = new byte[16];
        IcmpHeader.Echo(IcmpType.EchoRequest, 0x1234, 1).WriteTo(icmp);
        return BuildIpv4(source, destination, 1, icmp);
    }

    /// <summary>The same packet with IPv4 options inserted after the fixed header (IHL and lengths fixed up).</summary>
    private static byte[] WithIpOptions(byte[] frame, byte[] options)
    {
        Assert.True(Ipv4Header.TryParse(frame.AsSpan(EthernetFrame.HeaderLength), out var header));
        var result = new byte[frame.Length + options.Length];
        frame.AsSpan(0, Gateway.Ipv4PayloadOffset).CopyTo(result);
        options.CopyTo(result, Gateway.Ipv4PayloadOffset);
        frame.AsSpan(Gateway.Ipv4PayloadOffset).CopyTo(result.AsSpan(Gateway.Ipv4PayloadOffset + options.Length));
        (header with { PayloadLength = header.PayloadLength + options.Length }).WriteTo(result.AsSpan(EthernetFrame.HeaderLength));

        // An Ipv4Header has no options: the IHL is set by hand (the total length already counts them).
        result[EthernetFrame.HeaderLength] = (byte)(0x40 | ((Ipv4Packet.MinHeaderLength + options.Length) / 4));
        FixIpChecksum(result, Ipv4Packet.MinHeaderLength + options.Length);
        return result;
    }

    /// <summary>Recomputes the header checksum after a test has changed the header by hand.</summary>
    private static void FixIpChecksum(byte[] frame, int headerLength)
    {
        var header = frame.AsSpan(EthernetFrame.HeaderLength, headerLength);
        header[10] = 0;
        header[11] = 0;
        var checksum = Checksum.Compute(header);
        header[10] = (byte)(checksum >> 8);
        header[11] = (byte)checksum;
    }
}
