namespace NetWire.Core.Packets;

/// <summary>
/// Walks DHCP options (RFC 2132 2): each <see cref="MoveNext"/> stops at the next option other
/// than Pad, until End or the end of the bytes. An option whose length runs past the bytes ends
/// the walk with <see cref="IsMalformed"/> set.
/// </summary>
public ref struct DhcpOptionReader
{
    private ReadOnlySpan<byte> _rest;

    /// <summary>Starts a walk over <paramref name="options"/> (<see cref="DhcpPacket.Options"/>).</summary>
    public DhcpOptionReader(ReadOnlySpan<byte> options)
    {
        _rest = options;
        Code = DhcpOptionCode.End;
        Value = default;
        IsMalformed = false;
    }

    /// <summary>The current option's code.</summary>
    public DhcpOptionCode Code { get; private set; }

    /// <summary>The current option's value.</summary>
    public ReadOnlySpan<byte> Value { get; private set; }

    /// <summary>The walk stopped at an option that runs past the bytes.</summary>
    public bool IsMalformed { get; private set; }

    /// <summary>Moves to the next option; false at End, at the end of the bytes, or at a malformed option.</summary>
    public bool MoveNext()
    {
        while (_rest.Length > 0)
        {
            var code = (DhcpOptionCode)_rest[0];
            if (code == DhcpOptionCode.End)
            {
                break;
            }

            if (code == DhcpOptionCode.Pad)
            {
                _rest = _rest[1..];
                continue;
            }

            if (_rest.Length < 2 || _rest.Length < 2 + _rest[1])
            {
                IsMalformed = true;
                break;
            }

            Code = code;
            Value = _rest.Slice(2, _rest[1]);
            _rest = _rest[(2 + _rest[1])..];
            return true;
        }

        _rest = default;
        Code = DhcpOptionCode.End;
        Value = default;
        return false;
    }
}
