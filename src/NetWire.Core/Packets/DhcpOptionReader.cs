namespace NetWire.Core.Packets;

/// <summary>
/// Walks DHCP options (RFC 2132 2): each <see cref="MoveNext"/> stops at the next option other
/// than Pad, until End or the end of the bytes. An option whose length runs past the bytes ends
/// the walk with <see cref="IsMalformed"/> set.
/// </summary>
public ref struct DhcpOptionReader
{
    private OptionWalker _walker;

    /// <summary>Starts a walk over <paramref name="options"/> (<see cref="DhcpPacket.Options"/>).</summary>
    public DhcpOptionReader(ReadOnlySpan<byte> options) =>
        _walker = new OptionWalker(options, (byte)DhcpOptionCode.Pad, (byte)DhcpOptionCode.End, lengthCountsHeader: false);

    /// <summary>The current option's code.</summary>
    public readonly DhcpOptionCode Code => (DhcpOptionCode)_walker.Code;

    /// <summary>The current option's value: the bytes after its code and length.</summary>
    public readonly ReadOnlySpan<byte> Value => _walker.Value;

    /// <summary>The walk stopped at a malformed option.</summary>
    public readonly bool IsMalformed => _walker.IsMalformed;

    /// <summary>Moves to the next option; false at the end of the list or at a malformed option.</summary>
    public bool MoveNext() => _walker.MoveNext();
}
