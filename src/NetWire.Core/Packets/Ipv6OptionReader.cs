namespace NetWire.Core.Packets;

/// <summary>
/// Walks the options of a hop-by-hop or destination options header (RFC 8200 4.2): each
/// <see cref="MoveNext"/> stops at the next option other than Pad1 and PadN. An option whose
/// length runs past the header ends the walk with <see cref="IsMalformed"/> set.
/// </summary>
public ref struct Ipv6OptionReader
{
    /// <summary>The jumbo payload option (RFC 2675 2).</summary>
    public const byte JumboPayload = 0xc2;

    /// <summary>The router alert option (RFC 2711), which MLD reports carry.</summary>
    public const byte RouterAlert = 0x05;

    private const byte Pad1 = 0;
    private const byte PadN = 1;

    private OptionWalker _walker;

    /// <summary>Starts a walk over <paramref name="options"/>.</summary>
    public Ipv6OptionReader(ReadOnlySpan<byte> options) =>
        _walker = new OptionWalker(options, Pad1, end: null, lengthCountsHeader: false);

    /// <summary>The current option's type.</summary>
    public readonly byte Type => _walker.Code;

    /// <summary>
    /// What a node that does not know the current option must do, from its two high bits (RFC 8200
    /// 4.2): 0 skip it, 1 discard the packet, 2 discard and send a parameter problem, 3 the same
    /// unless the destination was multicast.
    /// </summary>
    public readonly int UnknownAction => _walker.Code >> 6;

    /// <summary>The current option's data.</summary>
    public readonly ReadOnlySpan<byte> Value => _walker.Value;

    /// <summary>The walk stopped at a malformed option.</summary>
    public readonly bool IsMalformed => _walker.IsMalformed;

    /// <summary>Moves to the next option that is not padding; false at the end of the header or at a malformed option.</summary>
    public bool MoveNext()
    {
        while (_walker.MoveNext())
        {
            if (_walker.Code != PadN)
            {
                return true;
            }
        }

        return false;
    }
}
