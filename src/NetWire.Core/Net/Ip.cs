using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace NetWire.Core.Net;

/// <summary>IPv4 addresses as host-order <see cref="uint"/> values (10.0.2.2 is 0x0A000202), the form the stack compares and stores.</summary>
public static class Ip
{
    /// <summary>The numeric value of an IPv4 address.</summary>
    public static uint ToUInt(IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new ArgumentException($"{address} is not an IPv4 address", nameof(address));
        }

        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        return BinaryPrimitives.ReadUInt32BigEndian(bytes);
    }

    /// <summary>The address with the numeric value <paramref name="value"/>.</summary>
    public static IPAddress ToAddress(uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }

    /// <summary>The address in the first 4 bytes of <paramref name="bytes"/> (network order), as a number.</summary>
    public static uint Read(ReadOnlySpan<byte> bytes) => BinaryPrimitives.ReadUInt32BigEndian(bytes);

    /// <summary>Dotted form, for logs and errors.</summary>
    public static string Format(uint value) => $"{value >> 24}.{(value >> 16) & 0xff}.{(value >> 8) & 0xff}.{value & 0xff}";

    /// <summary>127.0.0.0/8.</summary>
    public static bool IsLoopback(uint value) => value >> 24 == 127;
}
