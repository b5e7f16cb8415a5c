using System.Buffers.Binary;
using NetWire.Core.Packets;

namespace NetWire.Devices.Tests.Pcap;

/// <summary>Builds pcap and pcapng files byte by byte, so tests can break exactly one field.</summary>
internal static class CaptureBytes
{
    /// <summary>A 60-byte Ethernet frame whose last byte is <paramref name="tag"/>.</summary>
    public static byte[] Frame(byte tag, int length = 60)
    {
        var frame = new byte[length];
        new EthernetHeader(MacAddress.Broadcast, new MacAddress(0x5254_0000_0000), EtherType.Arp).WriteTo(frame);
        frame[^1] = tag;
        return frame;
    }

    public static byte[] PcapHeader(bool nano = false, int snaplen = 65535, int linkType = 1, bool bigEndian = false)
    {
        var header = new byte[24];
        Put32(header, 0, nano ? 0xa1b23c4d : 0xa1b2c3d4, bigEndian);
        Put16(header, 4, 2, bigEndian);
        Put16(header, 6, 4, bigEndian);
        Put32(header, 16, (uint)snaplen, bigEndian);
        Put32(header, 20, (uint)linkType, bigEndian);
        return header;
    }

    public static byte[] PcapRecord(uint seconds, uint fraction, byte[] data, int? capturedLength = null, int? originalLength = null, bool bigEndian = false)
    {
        var record = new byte[16 + data.Length];
        Put32(record, 0, seconds, bigEndian);
        Put32(record, 4, fraction, bigEndian);
        Put32(record, 8, (uint)(capturedLength ?? data.Length), bigEndian);
        Put32(record, 12, (uint)(originalLength ?? capturedLength ?? data.Length), bigEndian);
        data.CopyTo(record, 16);
        return record;
    }

    public static byte[] SectionHeader()
    {
        var block = new byte[28];
        Put32(block, 0, 0x0a0d0d0a);
        Put32(block, 4, 28);
        Put32(block, 8, 0x1a2b3c4d);
        Put16(block, 12, 1);
        Put64(block, 16, ulong.MaxValue);
        Put32(block, 24, 28);
        return block;
    }

    /// <summary>An interface description block; <paramref name="tsresol"/> adds an if_tsresol option.</summary>
    public static byte[] Interface(int linkType = 1, int snaplen = 65535, byte? tsresol = null)
    {
        var length = 20 + (tsresol is null ? 0 : 12);
        var block = new byte[length];
        Put32(block, 0, 1);
        Put32(block, 4, (uint)length);
        Put16(block, 8, (ushort)linkType);
        Put32(block, 12, (uint)snaplen);
        if (tsresol is byte resolution)
        {
            Put16(block, 16, 9);
            Put16(block, 18, 1);
            block[20] = resolution;
        }

        Put32(block, length - 4, (uint)length);
        return block;
    }

    public static byte[] EnhancedPacket(int interfaceId, ulong timestamp, byte[] data, int? capturedLength = null)
    {
        var padded = (data.Length + 3) & ~3;
        var length = 32 + padded;
        var block = new byte[length];
        Put32(block, 0, 6);
        Put32(block, 4, (uint)length);
        Put32(block, 8, (uint)interfaceId);
        Put32(block, 12, (uint)(timestamp >> 32));
        Put32(block, 16, (uint)timestamp);
        Put32(block, 20, (uint)(capturedLength ?? data.Length));
        Put32(block, 24, (uint)(capturedLength ?? data.Length));
        data.CopyTo(block, 28);
        Put32(block, length - 4, (uint)length);
        return block;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    public static string Write(string dir, string name, byte[] bytes)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static void Put16(byte[] into, int offset, ushort value, bool bigEndian = false)
    {
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt16BigEndian(into.AsSpan(offset), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt16LittleEndian(into.AsSpan(offset), value);
        }
    }

    public static void Put32(byte[] into, int offset, uint value, bool bigEndian = false)
    {
        if (bigEndian)
        {
            BinaryPrimitives.WriteUInt32BigEndian(into.AsSpan(offset), value);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(into.AsSpan(offset), value);
        }
    }

    private static void Put64(byte[] into, int offset, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(into.AsSpan(offset), value);
}
