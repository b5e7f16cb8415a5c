using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>A 48-bit IEEE 802 MAC address as a value (no allocation; equality is one compare).</summary>
public readonly struct MacAddress : IEquatable<MacAddress>
{
    /// <summary>Bytes in a MAC address.</summary>
    public const int Length = 6;

    private readonly ulong _value;

    /// <summary>The address whose six bytes, in wire order, are the low 48 bits of <paramref name="value"/> (0x52550a000202 is 52:55:0a:00:02:02).</summary>
    public MacAddress(ulong value) => _value = value & 0xFFFF_FFFF_FFFFUL;

    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public static MacAddress Broadcast => new(0xFFFF_FFFF_FFFFUL);

    /// <summary>The Ethernet group an IPv6 multicast address maps to: 33:33 and its low 32 bits (RFC 2464 7).</summary>
    public static MacAddress Ipv6Multicast(Net.IpAddr group) => new(0x3333_0000_0000UL | group.Low32);

    /// <summary>The individual/group bit of the first byte is set: multicast or broadcast.</summary>
    public bool IsMulticast => ((_value >> 40) & 1) != 0;

    /// <summary>ff:ff:ff:ff:ff:ff.</summary>
    public bool IsBroadcast => _value == 0xFFFF_FFFF_FFFFUL;

    /// <summary>The address in the first six bytes of <paramref name="bytes"/>.</summary>
    public static MacAddress Read(ReadOnlySpan<byte> bytes) =>
        new(((ulong)BinaryPrimitives.ReadUInt16BigEndian(bytes) << 32) | BinaryPrimitives.ReadUInt32BigEndian(bytes[2..Length]));

    /// <summary>Writes the six bytes to the start of <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(_value >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..Length], (uint)_value);
    }

    /// <summary>The address as a number, the form of <see cref="MacAddress(ulong)"/>.</summary>
    public ulong ToUInt64() => _value;

    /// <inheritdoc/>
    public bool Equals(MacAddress other) => _value == other._value;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is MacAddress other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => _value.GetHashCode();

    /// <summary>Colon-separated lower-case hex: 52:55:0a:00:02:02.</summary>
    public override string ToString() =>
        string.Create(17, _value, static (chars, value) =>
        {
            for (var i = 0; i < Length; i++)
            {
                var b = (byte)(value >> (40 - (8 * i)));
                chars[3 * i] = "0123456789abcdef"[b >> 4];
                chars[(3 * i) + 1] = "0123456789abcdef"[b & 0xf];
                if (i < Length - 1)
                {
                    chars[(3 * i) + 2] = ':';
                }
            }
        });

    /// <summary>Equality.</summary>
    public static bool operator ==(MacAddress left, MacAddress right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(MacAddress left, MacAddress right) => !left.Equals(right);
}
