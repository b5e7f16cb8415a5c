using System.Diagnostics.CodeAnalysis;
using NetWire.Core.Net;
using NetWire.Spice.Link;

namespace NetWire.Spice;

/// <summary>
/// A SPICE peer broke the protocol. It ends that one connection (and, for a main channel,
/// its session), never the server.
/// </summary>
internal sealed class SpiceProtocolException : Exception, IHasEndReason
{
    public SpiceProtocolException()
    {
    }

    public SpiceProtocolException(string message)
        : base(message)
    {
    }

    public SpiceProtocolException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public SpiceProtocolException(string message, SpiceLinkErr linkError)
        : base(message) => LinkError = linkError;

    /// <summary>The link error sent to the peer for this violation, when one was sent.</summary>
    public SpiceLinkErr LinkError { get; }

    /// <inheritdoc/>
    public EndReason EndReason => EndReason.ProtocolError;
}

/// <summary>Keeps throw sites out of the parsing paths.</summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void Protocol(string message) => throw new SpiceProtocolException(message);

    [DoesNotReturn]
    public static void Protocol(string message, SpiceLinkErr linkError) => throw new SpiceProtocolException(message, linkError);
}
