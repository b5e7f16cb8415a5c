namespace NetWire.Core.Packets;

/// <summary>
/// The walk that TCP, DHCP and IPv6 options share: one-byte padding codes, an end code (IPv6
/// options have none), and records of a code, a length and a value. Each <see cref="MoveNext"/> stops at the next record until the
/// end code or the end of the bytes; a record whose length runs past the bytes (or, where the
/// length counts the code and length bytes, is under 2) ends the walk as malformed.
/// </summary>
internal ref struct OptionWalker
{
    private readonly byte _pad;
    private readonly int _end;
    private readonly bool _lengthCountsHeader;
    private ReadOnlySpan<byte> _rest;

    public OptionWalker(ReadOnlySpan<byte> options, byte pad, byte? end, bool lengthCountsHeader)
    {
        _rest = options;
        _pad = pad;
        _end = end ?? -1;
        _lengthCountsHeader = lengthCountsHeader;
        Code = end ?? 0;
        Value = default;
        IsMalformed = false;
    }

    public byte Code { get; private set; }

    public ReadOnlySpan<byte> Value { get; private set; }

    public bool IsMalformed { get; private set; }

    public bool MoveNext()
    {
        while (_rest.Length > 0)
        {
            var code = _rest[0];
            if (code == _end)
            {
                break;
            }

            if (code == _pad)
            {
                _rest = _rest[1..];
                continue;
            }

            var length = _rest.Length < 2 ? 0 : _lengthCountsHeader ? _rest[1] : 2 + _rest[1];
            if (length < 2 || length > _rest.Length)
            {
                IsMalformed = true;
                break;
            }

            Code = code;
            Value = _rest[2..length];
            _rest = _rest[length..];
            return true;
        }

        _rest = default;
        Code = (byte)_end;
        Value = default;
        return false;
    }
}
