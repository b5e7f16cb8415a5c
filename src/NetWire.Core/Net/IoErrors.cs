using System.Net.Sockets;

namespace NetWire.Core.Net;

/// <summary>
/// The expected I/O failures, by what they mean: the connection failed, we are shutting it down,
/// a file could not be used, a datagram socket reported an ICMP error. A peer going away is not
/// our error: code that catches these logs at Debug or counts, and lets everything else through.
/// </summary>
/// <remarks>
/// Each predicate is exactly as wide as the filters it replaced. In particular
/// <see cref="IsSocketFailure"/> takes every socket error, not only the peer-gone ones: code that
/// ends one connection on any socket error keeps doing so, and narrowing it would turn an
/// unreachable host into an unobserved exception.
/// </remarks>
public static class IoErrors
{
    /// <summary>
    /// The peer went away: it reset (ECONNRESET) or aborted (ECONNABORTED) the connection, or it
    /// is gone for writing (EPIPE, which .NET reports as <see cref="SocketError.Shutdown"/>).
    /// </summary>
    public static bool IsPeerGone(SocketError error) =>
        error is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown;

    /// <summary>
    /// An ICMP port unreachable for an earlier datagram, reported on a datagram socket by its next
    /// call: ECONNREFUSED on Linux, WSAECONNRESET on Windows.
    /// </summary>
    public static bool IsPortUnreachable(SocketError error) =>
        error is SocketError.ConnectionRefused or SocketError.ConnectionReset;

    /// <summary>Any ICMP error for an earlier datagram: port, host or network unreachable.</summary>
    public static bool IsUnreachable(SocketError error) =>
        IsPortUnreachable(error) || error is SocketError.HostUnreachable or SocketError.NetworkUnreachable;

    /// <summary>A blocking call that ended without a result and may be tried again: its timeout, EAGAIN, EINTR.</summary>
    public static bool IsTransient(SocketError error) =>
        error is SocketError.TimedOut or SocketError.WouldBlock or SocketError.Interrupted;

    /// <summary>
    /// The connection failed, for any network reason: a <see cref="SocketException"/>, or the
    /// <see cref="IOException"/> a <see cref="NetworkStream"/> wraps around one.
    /// </summary>
    public static bool IsSocketFailure(Exception ex) =>
        ex is SocketException or IOException { InnerException: SocketException };

    /// <summary>An I/O operation failed: any <see cref="IOException"/> (files, pipes, streams) or a <see cref="SocketException"/>.</summary>
    public static bool IsIoFailure(Exception ex) => ex is IOException or SocketException;

    /// <summary>Our own shutdown: the operation was cancelled, or what it used was disposed by our close.</summary>
    public static bool IsShutdown(Exception ex) => ex is OperationCanceledException or ObjectDisposedException;

    /// <summary>Our own shutdown, or anything at all once <paramref name="stopping"/> is cancelled.</summary>
    public static bool IsShutdown(Exception ex, CancellationToken stopping) => IsShutdown(ex) || stopping.IsCancellationRequested;

    /// <summary>A socket operation ended without a result: the socket failed, or our shutdown cancelled or closed it.</summary>
    public static bool IsSocketEnd(Exception ex) => IsSocketFailure(ex) || IsShutdown(ex);

    /// <summary>A file could not be opened, read or written (missing, a directory, no permission, a pipe whose reader left).</summary>
    public static bool IsFileError(Exception ex) => ex is IOException or UnauthorizedAccessException;
}
