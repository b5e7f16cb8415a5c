using System.Buffers.Binary;
using System.Collections.Concurrent;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Tests;

/// <summary>Builds and parses the guest's side of the wire for tests.</summary>
internal static class TestPackets
{
    public static readonly byte[] GuestMac = [0x02, 0x00, 0x00, 0x00, 0x00, 0x15];
    public const uint GuestIp = 0x0A00020F;
    public const uint GatewayIp = 0x0A000202;

    public static byte[] BuildIpv4(uint source, uint destination, byte protocol, ReadOnlySpan<byte> payload, byte ttl = 64, ushort fragment = 0x4000, byte[]? dstMac = null)
    {
        var frame = new byte[14 + 20 + payload.Length];
        (dstMac ?? Gateway.GatewayMac).CopyTo(frame, 0);
        GuestMac.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        var ip = frame.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + payload.Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], fragment);
        ip[8] = ttl;
        ip[9] = protocol;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        payload.CopyTo(ip[20..]);
        return frame;
    }

    public static byte[] BuildUdp(uint source, ushort sourcePort, uint destination, ushort destinationPort, ReadOnlySpan<byte> data, byte[]? dstMac = null)
    {
        var udp = new byte[8 + data.Length];
        BinaryPrimitives.WriteUInt16BigEndian(udp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        data.CopyTo(udp.AsSpan(8));
        var sum = Checksum.Finish(Checksum.Add(Checksum.AddPseudoHeader(0, source, destination, 17, udp.Length), udp));
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(6), sum == 0 ? (ushort)0xffff : sum);
        return BuildIpv4(source, destination, 17, udp, dstMac: dstMac);
    }

    public static byte[] BuildTcp(uint source, ushort sourcePort, uint destination, ushort destinationPort, uint seq, uint ack, byte flags, ushort window, ReadOnlySpan<byte> data, ReadOnlySpan<byte> options = default)
    {
        var headerLength = 20 + options.Length;
        var tcp = new byte[headerLength + data.Length];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(8), ack);
        tcp[12] = (byte)(headerLength / 4 << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), window);
        options.CopyTo(tcp.AsSpan(20));
        data.CopyTo(tcp.AsSpan(headerLength));
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), Checksum.Finish(Checksum.Add(Checksum.AddPseudoHeader(0, source, destination, 6, tcp.Length), tcp)));
        return BuildIpv4(source, destination, 6, tcp);
    }

    /// <summary>A parsed frame from the gateway: IPv4 fields and the L4 bytes (checksums verified).</summary>
    public static (uint Source, uint Destination, byte Protocol, byte[] Payload) ParseIpv4(byte[] frame)
    {
        Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)));
        var ip = frame.AsSpan(14);
        Assert.True(Checksum.IsValid(Checksum.Add(0, ip[..20])), "IP header checksum");
        var total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        var source = BinaryPrimitives.ReadUInt32BigEndian(ip[12..]);
        var destination = BinaryPrimitives.ReadUInt32BigEndian(ip[16..]);
        var payload = ip[20..total].ToArray();
        if (ip[9] is 6 or 17)
        {
            Assert.True(Checksum.IsValid(Checksum.Add(Checksum.AddPseudoHeader(0, source, destination, ip[9], payload.Length), payload)), "L4 checksum");
        }

        return (source, destination, ip[9], payload);
    }
}

/// <summary>Collects what the gateway sends towards the guest.</summary>
internal sealed class CollectingReceiver : IPacketReceiver
{
    public ConcurrentQueue<byte[]> Frames { get; } = new();

    public bool CanRecvPacket => true;

    public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => default;

    public void RecvPacket(Frame frame)
    {
        Frames.Enqueue(frame.Span.ToArray());
        frame.Dispose();
    }
}
