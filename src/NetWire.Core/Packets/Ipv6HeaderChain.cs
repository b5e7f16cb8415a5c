namespace NetWire.Core.Packets;

/// <summary>
/// Walks the extension headers of an IPv6 packet (RFC 8200 4) from the fixed header's Next
/// Header to the upper layer. Each <see cref="MoveNext"/> stops at the next extension header
/// (<see cref="Current"/>): hop-by-hop options, routing, fragment or destination options, the
/// ones whose length the walk knows how to read. The walk ends at the first other value, which is
/// the upper layer (<see cref="UpperProtocol"/>, <see cref="UpperPayload"/>), or with
/// <see cref="IsMalformed"/> when a header runs past the payload.
/// </summary>
/// <remarks>
/// Every header is at least 8 bytes, so a walk ends after at most payload length / 8 steps; it
/// cannot loop. Whether the chain is acceptable (its length, order, repeats, a routing type, a
/// fragment, an option) is for the caller to judge, from <see cref="Current"/> and <see cref="Count"/>.
/// Other extension headers (AH, ESP, mobility, HIP, shim6) end the walk as the upper layer.
/// </remarks>
public ref struct Ipv6HeaderChain
{
    private ReadOnlySpan<byte> _rest;
    private IpProtocol _next;

    /// <summary>Starts a walk over <paramref name="payload"/> (an <see cref="Ipv6Packet.Payload"/>) whose first header is <paramref name="nextHeader"/>.</summary>
    public Ipv6HeaderChain(IpProtocol nextHeader, ReadOnlySpan<byte> payload)
    {
        _rest = payload;
        _next = nextHeader;
        Current = default;
        Count = 0;
        IsMalformed = false;
    }

    /// <summary>The extension header the walk stopped at.</summary>
    public Ipv6ExtensionHeader Current { get; private set; }

    /// <summary>Extension headers walked so far.</summary>
    public int Count { get; private set; }

    /// <summary>The walk stopped at a header that runs past the payload.</summary>
    public bool IsMalformed { get; private set; }

    /// <summary>After the walk: the protocol of what follows the last extension header.</summary>
    public readonly IpProtocol UpperProtocol => _next;

    /// <summary>After the walk: the bytes after the last extension header (the upper-layer message).</summary>
    public readonly ReadOnlySpan<byte> UpperPayload => _rest;

    /// <summary>True for the Next Header values the walk steps over.</summary>
    public static bool IsExtensionHeader(IpProtocol protocol) =>
        protocol is IpProtocol.Ipv6HopByHop or IpProtocol.Ipv6Routing or IpProtocol.Ipv6Fragment or IpProtocol.Ipv6DestinationOptions;

    /// <summary>Moves to the next extension header; false at the upper layer or at a malformed header.</summary>
    public bool MoveNext()
    {
        if (IsMalformed || !IsExtensionHeader(_next))
        {
            return false;
        }

        if (_rest.Length < Ipv6ExtensionHeader.MinLength)
        {
            IsMalformed = true;
            return false;
        }

        // RFC 8200 4.5: the fragment header is 8 bytes and its second byte is reserved;
        // the others count their length in 8-byte units after the first 8 (4.3, 4.4, 4.6).
        var length = _next == IpProtocol.Ipv6Fragment ? Ipv6ExtensionHeader.MinLength : (_rest[1] + 1) * 8;
        if (length > _rest.Length)
        {
            IsMalformed = true;
            return false;
        }

        Current = new Ipv6ExtensionHeader(_next, _rest[..length]);
        _next = (IpProtocol)_rest[0];
        _rest = _rest[length..];
        Count++;
        return true;
    }
}
