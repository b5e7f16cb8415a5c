namespace NetWire.Core.Packets;

/// <summary>
/// Walks TCP options (RFC 9293 3.2): each <see cref="MoveNext"/> stops at the next option other
/// than NOP, until End of Option List or the end of the bytes. An option whose length is under
/// 2 or runs past the bytes ends the walk with <see cref="IsMalformed"/> set.
/// </summary>
public ref struct TcpOptionReader
{
    private OptionWalker _walker;

    /// <summary>Starts a walk over <paramref name="options"/> (<see cref="TcpPacket.Options"/>).</summary>
    public TcpOptionReader(ReadOnlySpan<byte> options) =>
        _walker = new OptionWalker(options, (byte)TcpOptionKind.Nop, (byte)TcpOptionKind.End, lengthCountsHeader: true);

    /// <summary>The current option's kind.</summary>
    public readonly TcpOptionKind Kind => (TcpOptionKind)_walker.Code;

    /// <summary>The current option's value: the bytes after its kind and length.</summary>
    public readonly ReadOnlySpan<byte> Value => _walker.Value;

    /// <summary>The walk stopped at a malformed option.</summary>
    public readonly bool IsMalformed => _walker.IsMalformed;

    /// <summary>Moves to the next option; false at the end of the list or at a malformed option.</summary>
    public bool MoveNext() => _walker.MoveNext();
}

/// <summary>TCP option kinds (IANA).</summary>
public enum TcpOptionKind : byte
{
    /// <summary>End of option list.</summary>
    End = 0,

    /// <summary>No-operation (padding).</summary>
    Nop = 1,

    /// <summary>Maximum segment size (RFC 9293 3.7.1).</summary>
    MaxSegmentSize = 2,

    /// <summary>Window scale (RFC 7323 2).</summary>
    WindowScale = 3,

    /// <summary>SACK permitted (RFC 2018).</summary>
    SackPermitted = 4,

    /// <summary>SACK blocks (RFC 2018).</summary>
    Sack = 5,

    /// <summary>Timestamps (RFC 7323 3).</summary>
    Timestamps = 8,
}
