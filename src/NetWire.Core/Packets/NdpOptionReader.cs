namespace NetWire.Core.Packets;

/// <summary>
/// Walks neighbour discovery options (RFC 4861 4.6): a type, a length in units of 8 bytes that
/// counts the type and length bytes, and the rest. A length of 0, or one that runs past the
/// bytes, ends the walk with <see cref="IsMalformed"/> set (4.6: such a message is discarded).
/// </summary>
public ref struct NdpOptionReader
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Starts a walk over <paramref name="options"/> (<see cref="NdpMessage.Options"/>).</summary>
    public NdpOptionReader(ReadOnlySpan<byte> options)
    {
        _rest = options;
        Type = 0;
        Value = default;
        IsMalformed = false;
    }

    /// <summary>The current option's type.</summary>
    public NdpOptionType Type { get; private set; }

    /// <summary>The current option's bytes after its type and length.</summary>
    public ReadOnlySpan<byte> Value { get; private set; }

    /// <summary>The walk stopped at a malformed option.</summary>
    public bool IsMalformed { get; private set; }

    /// <summary>A link-layer address option's address (its first six bytes; false when shorter).</summary>
    public readonly bool TryGetLinkLayerAddress(out MacAddress address)
    {
        if (Value.Length < MacAddress.Length)
        {
            address = default;
            return false;
        }

        address = MacAddress.Read(Value);
        return true;
    }

    /// <summary>Moves to the next option; false at the end of the bytes or at a malformed option.</summary>
    public bool MoveNext()
    {
        if (_rest.IsEmpty || IsMalformed)
        {
            return false;
        }

        var length = _rest.Length < 2 ? 0 : _rest[1] * 8;
        if (length == 0 || length > _rest.Length)
        {
            IsMalformed = true;
            _rest = default;
            return false;
        }

        Type = (NdpOptionType)_rest[0];
        Value = _rest[2..length];
        _rest = _rest[length..];
        return true;
    }
}
