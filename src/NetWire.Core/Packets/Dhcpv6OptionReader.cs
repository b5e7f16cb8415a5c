using System.Buffers.Binary;

namespace NetWire.Core.Packets;

/// <summary>
/// Walks DHCPv6 options (RFC 8415 21.1): a 16-bit code, a 16-bit length and the data. An option
/// whose length runs past the bytes ends the walk with <see cref="IsMalformed"/> set.
/// </summary>
public ref struct Dhcpv6OptionReader
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Starts a walk over <paramref name="options"/> (<see cref="Dhcpv6Packet.Options"/>).</summary>
    public Dhcpv6OptionReader(ReadOnlySpan<byte> options)
    {
        _rest = options;
        Code = 0;
        Value = default;
        IsMalformed = false;
    }

    /// <summary>The current option's code.</summary>
    public Dhcpv6OptionCode Code { get; private set; }

    /// <summary>The current option's data.</summary>
    public ReadOnlySpan<byte> Value { get; private set; }

    /// <summary>The walk stopped at a malformed option.</summary>
    public bool IsMalformed { get; private set; }

    /// <summary>Moves to the next option; false at the end of the bytes or at a malformed option.</summary>
    public bool MoveNext()
    {
        if (_rest.IsEmpty || IsMalformed)
        {
            return false;
        }

        var length = _rest.Length < 4 ? -1 : BinaryPrimitives.ReadUInt16BigEndian(_rest[2..]);
        if (length < 0 || 4 + length > _rest.Length)
        {
            IsMalformed = true;
            _rest = default;
            return false;
        }

        Code = (Dhcpv6OptionCode)BinaryPrimitives.ReadUInt16BigEndian(_rest);
        Value = _rest.Slice(4, length);
        _rest = _rest[(4 + length)..];
        return true;
    }
}
