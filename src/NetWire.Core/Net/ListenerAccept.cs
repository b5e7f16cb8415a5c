using System.Net.Sockets;

namespace NetWire.Core.Net;

/// <summary>The accept step shared by the appliance's listeners (the SPICE server, the control socket).</summary>
public static class ListenerAccept
{
    /// <summary>
    /// The next connection on <paramref name="listener"/>, or null when the listener should stop:
    /// it was closed or cancelled, or it failed (<paramref name="failed"/> is told why). A peer that
    /// reset or aborted before it was accepted is skipped. Closing the listener under a pending
    /// accept is a stop, not a failure: Linux ends that accept with ECANCELED (OperationAborted)
    /// before the caller's token may be cancelled.
    /// </summary>
    public static async Task<Socket?> NextAsync(Socket listener, Action<SocketException> failed, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                return await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IoErrors.IsShutdown(ex, cancellationToken))
            {
                return null;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.OperationAborted)
            {
                return null;
            }
            catch (SocketException ex) when (IoErrors.IsPeerGone(ex.SocketErrorCode))
            {
                continue;
            }
            catch (SocketException ex)
            {
                failed(ex);
                return null;
            }
        }

        return null;
    }
}
