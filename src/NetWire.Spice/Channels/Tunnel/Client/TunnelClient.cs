using System.Buffers.Binary;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;

namespace NetWire.Spice.Channels.Tunnel.Client;

/// <summary>Where and how the tunnel client connects.</summary>
internal sealed record TunnelClientOptions(string Host, int Port, byte[] Password, IReadOnlyList<TunnelServiceSpec> Services)
{
    /// <summary>First wait before reconnecting; doubles up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest wait between reconnects.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time allowed from connect to MAIN_INIT and to the tunnel link result.</summary>
    public TimeSpan LinkTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// NetWire's tunnel client: a SPICE session (main channel, then the tunnel channel) that
/// publishes TCP services to the guest and relays the connections the guest makes to them.
/// </summary>
/// <remarks>
/// How this works. Link main (connection id 0) and read MAIN_INIT for the session id; answer
/// PINGs; link the tunnel channel with that id; run <see cref="TunnelClientChannel"/>. When
/// either channel ends the session ends, its sockets are closed, and the client links again
/// after a backoff (250 ms doubling to 10 s, back to 250 ms after a session that reached INIT);
/// the services are added again on the new channel. A refused password ends the client: a
/// retry could not succeed.
/// </remarks>
internal sealed class TunnelClient(TunnelClientOptions options, Action<TunnelServiceSpec, IPAddress> published, ILogger logger)
{
    private long _sessions;

    /// <summary>Sessions that reached the tunnel's INIT.</summary>
    public long Sessions => Interlocked.Read(ref _sessions);

    /// <summary>Runs until cancelled; throws <see cref="SpiceLinkException"/> for a refused password.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = options.MinBackoff;
        var server = $"{options.Host}:{options.Port}";
        while (!cancellationToken.IsCancellationRequested)
        {
            string reason;
            var initialized = false;
            try
            {
                initialized = await RunSessionAsync(cancellationToken).ConfigureAwait(false);
                reason = "session ended";
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (SpiceLinkException ex) when (ex.Error == SpiceLinkErr.PermissionDenied)
            {
                throw;
            }
            catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or SpiceLinkException or SpiceProtocolException or OperationCanceledException or ChannelClosedException)
            {
                reason = ex.Message;
            }

            if (initialized)
            {
                backoff = options.MinBackoff;
            }

            TunnelLog.ClientRetry(logger, server, reason, (long)backoff.TotalMilliseconds);
            try
            {
                await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, options.MaxBackoff.Ticks));
        }
    }

    /// <summary>One session; true when the tunnel reached INIT.</summary>
    private async Task<bool> RunSessionAsync(CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var (mainStream, mainMini) = await LinkWithTimeoutAsync(0, SpiceChannelType.Main, cancellationToken).ConfigureAwait(false);
        await using (mainStream.ConfigureAwait(false))
        {
            var main = new MessageConnection(mainStream, mainMini, MainReceiveLimit, 64);
            var mainSend = main.SendLoopAsync(session.Token);
            uint sessionId;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(session.Token))
            {
                timeout.CancelAfter(options.LinkTimeout);
                sessionId = await ReadMainInitAsync(main, timeout.Token).ConfigureAwait(false);
            }

            var (tunnelStream, tunnelMini) = await LinkWithTimeoutAsync(sessionId, SpiceChannelType.Tunnel, session.Token).ConfigureAwait(false);
            await using (tunnelStream.ConfigureAwait(false))
            {
                TunnelLog.ClientLinked(logger, $"{options.Host}:{options.Port}", sessionId);
                var tunnel = new TunnelClientChannel(tunnelStream, tunnelMini, options.Services, published, logger);
                var tunnelRun = tunnel.RunAsync(session.Token);
                var mainRun = MainLoopAsync(main, session.Token);
                await Task.WhenAny(tunnelRun, mainRun).ConfigureAwait(false);
                await session.CancelAsync().ConfigureAwait(false);
                main.CompleteSending();
                await tunnelRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                await mainRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                await mainSend.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (tunnel.Initialized)
                {
                    Interlocked.Increment(ref _sessions);
                }

                return tunnel.Initialized;
            }
        }
    }

    /// <summary>Main channel messages read by the client: MAIN_INIT, PING and friends; agent data is not expected.</summary>
    private const int MainReceiveLimit = 512 * 1024;

    private async Task<(Stream Stream, bool Mini)> LinkWithTimeoutAsync(uint connectionId, SpiceChannelType type, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.LinkTimeout);
        return await SpiceClientLink.LinkAsync(options.Host, options.Port, connectionId, type, options.Password, timeout.Token).ConfigureAwait(false);
    }

    private static async Task<uint> ReadMainInitAsync(MessageConnection main, CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await main.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (header.Type == MainMessages.Init)
            {
                if (main.LastSize < 4)
                {
                    throw new SpiceProtocolException($"MAIN_INIT of {main.LastSize} bytes");
                }

                return BinaryPrimitives.ReadUInt32LittleEndian(main.Body);
            }

            await AnswerMainAsync(main, header.Type, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task MainLoopAsync(MessageConnection main, CancellationToken cancellationToken)
    {
        while (true)
        {
            var header = await main.ReadAsync(cancellationToken).ConfigureAwait(false);
            await AnswerMainAsync(main, header.Type, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async ValueTask AnswerMainAsync(MessageConnection main, ushort type, CancellationToken cancellationToken)
    {
        switch (type)
        {
            case CommonMessages.Ping when main.LastSize >= 12:
                await main.SendAsync(CommonMessages.Pong, main.Body[..12].ToArray(), cancellationToken).ConfigureAwait(false);
                break;
            case CommonMessages.Disconnecting:
                throw new EndOfStreamException("the server is disconnecting");
            default:
                // NAME, UUID, MOUSE_MODE, MULTI_MEDIA_TIME, NOTIFY, ...: nothing to do.
                break;
        }
    }
}
