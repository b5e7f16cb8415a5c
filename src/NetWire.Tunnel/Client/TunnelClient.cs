using System.Buffers.Binary;
using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using NetWire.Core.Net;
using NetWire.Core.Tls;
using NetWire.Spice;
using NetWire.Spice.Channels;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Framing;
using NetWire.Spice.Link;
using NetWire.Spice.Migration;

namespace NetWire.Tunnel.Client;

/// <summary>Where and how the tunnel client connects.</summary>
internal sealed record TunnelClientOptions(string Host, int Port, byte[] Password, IReadOnlyList<TunnelServiceSpec> Services)
{
    /// <summary>First wait before reconnecting; doubles up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest wait between reconnects.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Time allowed from connect to MAIN_INIT and to the tunnel link result (the TLS handshake included).</summary>
    public TimeSpan LinkTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// TLS (<c>--tls --ca-file F [--cert-subject S]</c>): every link goes to a TLS port and the
    /// server's certificate must chain to the CA file and carry the subject, or else match the host.
    /// Null for plaintext.
    /// </summary>
    public TlsSettings? Tls { get; init; }

    /// <summary>Offer the tunnel's migration cap, so open sockets follow a migration (<c>--no-socket-migration</c> turns it off).</summary>
    public bool SocketMigration { get; init; } = true;
}

/// <summary>
/// NetWire's tunnel client: a SPICE session (main channel, then the tunnel channel) that
/// publishes TCP services to the guest and relays the connections the guest makes to them.
/// </summary>
/// <remarks>
/// How this works. Link main (connection id 0, main cap SEMI_SEAMLESS) and read MAIN_INIT for
/// the session id; answer PINGs; link the tunnel channel with that id; run
/// <see cref="TunnelClientChannel"/>. When either channel ends the session ends, its sockets
/// are closed, and the client links again after a backoff (250 ms doubling to 10 s, back to
/// 250 ms after a session that reached INIT); the services are added again.
///
/// Semi-seamless migration, as spice-gtk follows it (protocol.md §5.1): MIGRATE_BEGIN links main and
/// the tunnel to the target with the session id (the target keeps them silent), then
/// MIGRATE_CONNECTED (or MIGRATE_CONNECT_ERROR) goes to the source; MIGRATE_CANCEL drops the
/// target links; MIGRATE_END ends the source session, sends MIGRATE_END (109) on the target's
/// main channel, waits for its INIT, and the target's tunnel channel starts (SET_ACK, INIT): services
/// are added again, and the sockets a flushed tunnel channel held continue there when the target
/// names them in MIGRATE_DATA (docs/tunnel.md, "Migration"); without a flush they are lost, as
/// with the original (protocol.md §5.1). MIGRATE_CANCEL resumes a flushed tunnel channel on the source.
/// SWITCH_HOST makes the next session a new one on the named host. The target becomes the
/// server for later reconnects. A refused password ends the client: a retry could not succeed.
/// With TLS the client links to the TLS ports: the one given, and the tls-port (sport) of
/// MIGRATE_BEGIN and SWITCH_HOST, checking the target's certificate against their cert subject
/// when they carry one (as spice-gtk does), else against the host. A server certificate that
/// does not verify ends the client as a refused password does.
/// </remarks>
internal sealed class TunnelClient(TunnelClientOptions options, Action<TunnelServiceSpec, IPAddress> published, ILogger logger)
{
    /// <summary>Main channel messages read by the client: MAIN_INIT, PING and friends; agent data is not expected.</summary>
    private const int MainReceiveLimit = 512 * 1024;

    private static readonly uint s_mainCaps = 1u << SpiceCaps.MainSemiSeamlessMigrate;

    /// <summary>The tunnel channel's caps: its sockets follow a migration (docs/tunnel.md, "Migration").</summary>
    private static readonly uint s_migrateCap = 1u << TunnelMessages.CapMigrate;

    private readonly ILogger _logger = logger;
    private string _host = options.Host;
    private int _port = options.Port;

    /// <summary>The certificate subject the current server's certificate must carry (TLS only); null: the host name.</summary>
    private string? _subject = options.Tls?.PeerSubject;
    private long _sessions;
    private long _migrations;

    /// <summary>Sessions that reached the tunnel's INIT.</summary>
    public long Sessions => Interlocked.Read(ref _sessions);

    /// <summary>Semi-seamless migrations followed to the end.</summary>
    public long Migrations => Interlocked.Read(ref _migrations);

    /// <summary>The server the client talks to now (changes with a migration).</summary>
    public string Server => $"{Volatile.Read(ref _host)}:{Volatile.Read(ref _port)}";

    /// <summary>Runs until cancelled; throws <see cref="SpiceLinkException"/> for a refused password.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = options.MinBackoff;
        Linked? migrated = null;
        TunnelClientChannel? continued = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            EndReason reason;
            string detail;
            var initialized = false;
            try
            {
                var outcome = await RunSessionAsync(migrated, continued, cancellationToken).ConfigureAwait(false);
                migrated = outcome.Target;
                continued = outcome.Continued;
                initialized = outcome.Initialized;
                if (migrated is not null || outcome.SwitchedHost)
                {
                    continue;
                }

                (reason, detail) = (outcome.Reason, outcome.Detail);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (SpiceLinkException ex) when (ex.Error == SpiceLinkErr.PermissionDenied)
            {
                throw;
            }
            catch (System.Security.Authentication.AuthenticationException)
            {
                // The server's certificate does not verify: a retry could not succeed either.
                throw;
            }
            catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is SpiceLinkException or SpiceProtocolException or OperationCanceledException or ChannelClosedException)
            {
                (reason, detail) = (ChannelLifetime.ReasonOf(ex), ex.Message);
                migrated = null;
                continued?.DropContinued();
                continued = null;
            }

            if (initialized)
            {
                backoff = options.MinBackoff;
            }

            TunnelLog.ClientRetry(_logger, Server, reason, detail, (long)backoff.TotalMilliseconds);
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

    /// <summary>One session, fresh or taken over from a migration.</summary>
    private async Task<Outcome> RunSessionAsync(Linked? migrated, TunnelClientChannel? continued, CancellationToken cancellationToken)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var linked = migrated ?? await LinkMainAsync(Volatile.Read(ref _host), Volatile.Read(ref _port), Volatile.Read(ref _subject), 0, cancellationToken).ConfigureAwait(false);
        Linked? target = null;
        try
        {
            uint sessionId;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(session.Token))
            {
                timeout.CancelAfter(options.LinkTimeout);
                if (migrated is not null)
                {
                    // protocol.md §5.1 step 6: MIGRATE_END (109) on the target's main, then its INIT.
                    await linked.Main.SendAsync(MainMessages.ClientMigrateEnd, [], timeout.Token).ConfigureAwait(false);
                }

                sessionId = await ReadMainInitAsync(linked.Main, timeout.Token).ConfigureAwait(false);
                if (linked.Tunnel is null)
                {
                    var (stream, mini) = await LinkWithTimeoutAsync(linked.Host, linked.Port, linked.Subject, sessionId, SpiceChannelType.Tunnel, TunnelCaps, session.Token).ConfigureAwait(false);
                    linked.Tunnel = stream;
                    linked.TunnelMini = mini;
                }
            }

            if (migrated is not null)
            {
                Interlocked.Increment(ref _migrations);
            }

            TunnelLog.ClientLinked(_logger, $"{linked.Host}:{linked.Port}", sessionId);
            var tunnel = new TunnelClientChannel(linked.Tunnel, linked.TunnelMini, options.Services, published, _logger, continued);
            continued = null;
            var tunnelRun = tunnel.RunAsync(session.Token);
            var migration = new MigrationFollower(this, linked, sessionId, tunnel);
            var mainRun = migration.RunAsync(session.Token);
            var first = await Task.WhenAny(tunnelRun, mainRun).ConfigureAwait(false);
            await session.CancelAsync().ConfigureAwait(false);
            await tunnelRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await mainRun.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

            // The channel that ended first says why the session ended.
            var (reason, detail) = first == tunnelRun || mainRun.Exception?.InnerException is not { } failure
                ? (tunnel.EndedBy ?? EndReason.Stopping, tunnel.AbortReason?.Message ?? "stopping")
                : (ChannelLifetime.ReasonOf(failure), failure.Message);
            if (tunnel.Initialized)
            {
                Interlocked.Increment(ref _sessions);
            }

            target = migration.SwitchTo;
            if (target is not null)
            {
                Volatile.Write(ref _host, target.Host);
                Volatile.Write(ref _port, target.Port);
                Volatile.Write(ref _subject, target.Subject);
            }
            else if (migration.SwitchHost is { } next)
            {
                Volatile.Write(ref _host, next.Host);
                Volatile.Write(ref _port, PortOf(next));
                Volatile.Write(ref _subject, next.CertSubject);
                tunnel.DropContinued();
                return new Outcome(tunnel.Initialized, null, null, true, reason, detail);
            }
            else
            {
                migration.DropTarget();
            }

            var handedOff = target is not null && tunnel.HandedOff ? tunnel : null;
            if (handedOff is null)
            {
                tunnel.DropContinued();
            }

            return new Outcome(tunnel.Initialized, target, handedOff, false, reason, detail);
        }
        finally
        {
            continued?.DropContinued();
            await linked.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The tunnel channel caps the client offers.</summary>
    private uint TunnelCaps => options.SocketMigration ? s_migrateCap : 0;

    /// <summary>True when the client links over TLS.</summary>
    private bool UsesTls => options.Tls is not null;

    /// <summary>The port of a migration destination this client links to: its TLS port with TLS, else its plaintext port; 0 or less for none.</summary>
    private int PortOf(MigrationDestination destination) => options.Tls is null ? destination.Port : destination.TlsPort;

    /// <summary>Links a main channel; a non-zero <paramref name="connectionId"/> makes it a migration target link.</summary>
    private async Task<Linked> LinkMainAsync(string host, int port, string? subject, uint connectionId, CancellationToken cancellationToken)
    {
        var (stream, mini) = await LinkWithTimeoutAsync(host, port, subject, connectionId, SpiceChannelType.Main, s_mainCaps, cancellationToken).ConfigureAwait(false);
        return new Linked(host, port, subject, stream, new MessageConnection(stream, mini, MainReceiveLimit, 64));
    }

    private async Task<(Stream Stream, bool Mini)> LinkWithTimeoutAsync(string host, int port, string? subject, uint connectionId, SpiceChannelType type, uint channelCaps, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.LinkTimeout);
        return await SpiceClientLink.LinkAsync(host, port, connectionId, type, options.Password, timeout.Token, channelCaps, options.Tls?.WithPeerSubject(subject)).ConfigureAwait(false);
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

            if (header.Type == CommonMessages.Ping && main.LastSize >= 12)
            {
                await main.SendAsync(CommonMessages.Pong, main.Body[..12].ToArray(), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private readonly record struct Outcome(bool Initialized, Linked? Target, TunnelClientChannel? Continued, bool SwitchedHost, EndReason Reason, string Detail);

    /// <summary>A linked main channel (its send loop running) and, once linked, the tunnel on the same server.</summary>
    private sealed class Linked : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _send;

        public Linked(string host, int port, string? subject, Stream stream, MessageConnection main)
        {
            Host = host;
            Port = port;
            Subject = subject;
            MainStream = stream;
            Main = main;
            _send = main.SendLoopAsync(_stop.Token);
        }

        public string Host { get; }

        public int Port { get; }

        /// <summary>The certificate subject checked on this server (TLS only).</summary>
        public string? Subject { get; }

        public Stream MainStream { get; }

        public MessageConnection Main { get; }

        public Stream? Tunnel { get; set; }

        public bool TunnelMini { get; set; }

        public async ValueTask DisposeAsync()
        {
            Main.CompleteSending();
            await _send.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await _stop.CancelAsync().ConfigureAwait(false);
            await _send.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await MainStream.DisposeAsync().ConfigureAwait(false);
            if (Tunnel is not null)
            {
                await Tunnel.DisposeAsync().ConfigureAwait(false);
            }

            _stop.Dispose();
        }
    }

    /// <summary>The source session's main channel: PINGs, and the migration messages of protocol.md §5.1.</summary>
    private sealed class MigrationFollower(TunnelClient client, Linked source, uint sessionId, TunnelClientChannel tunnel)
    {
        private Linked? _target;

        /// <summary>The target to switch to, set on MIGRATE_END after MIGRATE_CONNECTED.</summary>
        public Linked? SwitchTo { get; private set; }

        /// <summary>SWITCH_HOST's destination: the next session is a new one there.</summary>
        public MigrationDestination? SwitchHost { get; private set; }

        /// <summary>Closes target links that were never switched to.</summary>
        public void DropTarget()
        {
            if (_target is { } target && SwitchTo is null)
            {
                _ = target.DisposeAsync().AsTask();
                _target = null;
            }
        }

        public async Task RunAsync(CancellationToken cancellationToken)
        {
            var main = source.Main;
            while (true)
            {
                var header = await main.ReadAsync(cancellationToken).ConfigureAwait(false);
                switch (header.Type)
                {
                    case CommonMessages.Ping when main.LastSize >= 12:
                        await main.SendAsync(CommonMessages.Pong, main.Body[..12].ToArray(), cancellationToken).ConfigureAwait(false);
                        break;
                    case CommonMessages.Disconnecting:
                        throw new EndOfStreamException("the server is disconnecting");
                    case MainMessages.MigrateBegin:
                        var destination = MigrationMessages.ParseDstInfo(main.Body);
                        await BeginAsync(destination, cancellationToken).ConfigureAwait(false);
                        break;
                    case MainMessages.MigrateCancel:
                        DropTarget();
                        tunnel.ResumeAfterCancel();
                        break;
                    case MainMessages.MigrateEnd when _target is not null:
                        SwitchTo = _target;
                        return;
                    case MainMessages.MigrateSwitchHost:
                        var next = MigrationMessages.ParseDstInfo(main.Body);
                        if (client.PortOf(next) > 0)
                        {
                            DropTarget();
                            SwitchHost = next;
                            return;
                        }

                        break;
                    default:
                        // NAME, UUID, MOUSE_MODE, NOTIFY, a MIGRATE_END without a connected target: nothing to do.
                        break;
                }
            }
        }

        private async Task BeginAsync(MigrationDestination destination, CancellationToken cancellationToken)
        {
            DropTarget();
            Linked? target = null;
            try
            {
                var port = client.PortOf(destination);
                if (port <= 0)
                {
                    throw client.UsesTls is false
                        ? new SpiceLinkException(SpiceLinkErr.NeedSecured, "the migration target offers only a TLS port (run the client with --tls)")
                        : new SpiceLinkException(SpiceLinkErr.NeedUnsecured, "the migration target offers no TLS port");
                }

                target = await client.LinkMainAsync(destination.Host, port, destination.CertSubject, sessionId, cancellationToken).ConfigureAwait(false);
                var (stream, mini) = await client.LinkWithTimeoutAsync(destination.Host, port, destination.CertSubject, sessionId, SpiceChannelType.Tunnel, client.TunnelCaps, cancellationToken).ConfigureAwait(false);
                target.Tunnel = stream;
                target.TunnelMini = mini;
                _target = target;
                await source.Main.SendAsync(MainMessages.MigrateConnected, [], cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when ((IoErrors.IsIoFailure(ex) || ex is SpiceLinkException or OperationCanceledException or System.Security.Authentication.AuthenticationException) && !cancellationToken.IsCancellationRequested)
            {
                TunnelLog.ClientRetry(client._logger, $"{destination.Host}:{destination.Port}", ChannelLifetime.ReasonOf(ex), $"migration target link failed: {ex.Message}", 0);
                if (target is not null)
                {
                    await target.DisposeAsync().ConfigureAwait(false);
                }

                await source.Main.SendAsync(MainMessages.MigrateConnectError, [], cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
