using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;
using NetWire.Core.Wire;
using NetWire.Stack.Nat;

namespace NetWire.Stack;

/// <summary>
/// The user-mode gateway as a wire end: its "device" is the stack. Frames sent to this end
/// (the guest's frames) are handled by <see cref="Gateway"/>; frames the stack produces go to the
/// receiver while it can take them. Needs no root and no TAP.
/// </summary>
/// <remarks>
/// RunAsync runs a pump over the outbound queue (a batch of guest frames at a time under the
/// gateway lock, then the ACKs owed), the flush loop for connections blocked by a full guest
/// end, a 10 ms timer from the injected <see cref="TimeProvider"/>, and the host-forward listeners.
/// </remarks>
public sealed class GatewayEnd : WireEnd
{
    private const int BatchFrames = 64;
    private static readonly TimeSpan s_tick = TimeSpan.FromMilliseconds(10);

    private readonly Gateway _gateway;
    private readonly ILogger _logger;
    private readonly List<Socket> _listeners = [];
    private readonly List<(Socket Listener, HostForward Forward)> _listenersWithForwards = [];

    /// <summary>Creates the gateway end; throws <see cref="FormatException"/> when the options contradict each other.</summary>
    public GatewayEnd(string name, GatewayOptions options, FramePool pool, int queueCapacity, TimeProvider time, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _gateway = new Gateway(options, pool, time, logger);
        _logger = logger;
    }

    /// <inheritdoc/>
    public override string Description => _gateway.Options.Ipv6Enabled
        ? $"gateway {_gateway.Options.Network} via {_gateway.Options.GatewayIp}, {_gateway.Options.Network6} via {_gateway.Options.GatewayIp6}"
        : $"gateway {_gateway.Options.Network} via {_gateway.Options.GatewayIp}";

    /// <inheritdoc/>
    public override IPAddress? GuestIp => _gateway.GuestAddress;

    /// <inheritdoc/>
    public override IReadOnlyList<IPAddress> GuestIpv6 => _gateway.GuestIpv6.ToList();

    /// <summary>The gateway's drop reasons and flow totals.</summary>
    public StackCounters StackCounters => _gateway.Counters;

    /// <summary>The gateway itself (its DHCP leases travel in the migration state).</summary>
    internal Gateway Gateway => _gateway;

    /// <summary>TCP connections in the table now (including TIME-WAIT).</summary>
    public int TcpConnections
    {
        get
        {
            lock (_gateway.Sync)
            {
                return _gateway.Tcp.Count;
            }
        }
    }

    /// <summary>
    /// Makes this gateway a migration target's: it takes no guest frame, opens no host forward and
    /// runs no timer until <see cref="ReleaseHold"/> (the state stream has been adopted). Call before RunAsync.
    /// </summary>
    public void Hold() => _gateway.Hold();

    /// <summary>Runs a held gateway (no effect otherwise, or after its flows moved away).</summary>
    public void ReleaseHold() => _gateway.Thaw();

    /// <summary>
    /// Tells the gateway the guest's address (and IPv6 address, when it has one) and MAC before the
    /// guest has sent a frame (a guest configured statically, as <c>netwire run</c> does), so host
    /// forwards can reach it at once.
    /// </summary>
    public void AssumeGuest(IPAddress address, IPAddress? address6, ReadOnlySpan<byte> mac)
    {
        lock (_gateway.Sync)
        {
            _gateway.SetGuestMac(MacAddress.Read(mac));
            _gateway.SetGuestIp(Ip.ToUInt(address));
            if (address6 is not null)
            {
                _gateway.GuestIpv6.SetFirst(IpAddr.FromAddress(address6));
            }
        }
    }

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _gateway.Attach(receiver, Counters, stop.Token);
        _gateway.CloseForwards = CloseListeners;
        using var timer = _gateway.Time.CreateTimer(
            static state =>
            {
                var gateway = (Gateway)state!;
                lock (gateway.Sync)
                {
                    gateway.OnTimer();
                }
            },
            _gateway,
            s_tick,
            s_tick);
        var tasks = new List<Task> { PumpAsync(stop.Token), _gateway.FlushLoopAsync(stop.Token), ForwardsAsync(stop.Token) };
        try
        {
            await Task.WhenAny(tasks).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            CloseListeners();
            lock (_gateway.Sync)
            {
                _gateway.Shutdown();
            }
        }
    }

    /// <summary>
    /// Opens the host forwards (once the gateway runs: a held target binds them only after the
    /// source has let them go) and runs their loops. A listener closed by a handover ends its loop quietly.
    /// </summary>
    private async Task ForwardsAsync(CancellationToken cancellationToken)
    {
        Task runnable;
        lock (_gateway.Sync)
        {
            runnable = _gateway.Runnable;
        }

        await runnable.WaitAsync(cancellationToken).ConfigureAwait(false);
        OpenForwards();
        var loops = new List<Task>();
        foreach (var (listener, forward) in _listenersWithForwards)
        {
            loops.Add(forward.Transport == Transport.Udp
                ? UdpForwardLoopAsync(listener, forward, cancellationToken)
                : AcceptLoopAsync(listener, forward, cancellationToken));
        }

        await Task.WhenAll(loops).ConfigureAwait(false);

        // Only a handover ends the loops without an error; the gateway itself keeps running until stopped.
        await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
    }

    private void CloseListeners()
    {
        lock (_listeners)
        {
            foreach (var listener in _listeners)
            {
                listener.Dispose();
            }
        }
    }

    private void OpenForwards()
    {
        foreach (var forward in _gateway.Options.Forwards)
        {
            var udp = forward.Transport == Transport.Udp;
            var family = forward.Listen.AddressFamily;
            if (family == AddressFamily.InterNetworkV6 && !_gateway.Options.Ipv6Enabled)
            {
                throw new WireSetupException($"forward {forward}: an IPv6 forward needs IPv6 on the gateway (drop --no-ipv6)");
            }

            var socket = udp
                ? new Socket(family, SocketType.Dgram, ProtocolType.Udp)
                : new Socket(family, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                if (family == AddressFamily.InterNetworkV6)
                {
                    // [::] means IPv6 clients only; an IPv4 client reaches an IPv4 forward.
                    socket.DualMode = false;
                }

                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(forward.Listen);
                if (!udp)
                {
                    socket.Listen(128);
                }
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                throw new WireSetupException($"cannot listen for forward {forward}: {ex.Message}", ex);
            }

            lock (_listeners)
            {
                _listeners.Add(socket);
            }

            _listenersWithForwards.Add((socket, forward));
            StackLog.Forwarding(_logger, forward.ToString());
        }
    }

    private async Task AcceptLoopAsync(Socket listener, HostForward forward, CancellationToken cancellationToken)
    {
        while (true)
        {
            Socket accepted;
            try
            {
                accepted = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException && IsHandedOver)
            {
                return;
            }

            accepted.NoDelay = true;
            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    // A migration holds the gateway: the client's connection cannot start now.
                    _gateway.Counters.MigrationReset(Migration.FlowResetReason.Handshake);
                    accepted.LingerState = new LingerOption(true, 0);
                    accepted.Dispose();
                    continue;
                }

                _gateway.Tcp.OpenToGuest(accepted, forward.GuestPort, forward.Listen.AddressFamily == AddressFamily.InterNetworkV6);
            }
        }
    }

    private bool IsHandedOver
    {
        get
        {
            lock (_gateway.Sync)
            {
                return _gateway.HandedOver;
            }
        }
    }

    private async Task UdpForwardLoopAsync(Socket listener, HostForward forward, CancellationToken cancellationToken)
    {
        var buffer = new byte[65_535];
        EndPoint any = new IPEndPoint(listener.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (true)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await listener.ReceiveFromAsync(buffer, SocketFlags.None, any, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (NetWire.Core.Net.IoErrors.IsPortUnreachable(ex.SocketErrorCode))
            {
                // ICMP port unreachable for an earlier reply to a client that went away.
                continue;
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException && IsHandedOver)
            {
                return;
            }

            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    // Held still by a migration: lost, as on a busy link.
                    continue;
                }

                _gateway.Udp.FromForward(listener, (IPEndPoint)received.RemoteEndPoint, forward.GuestPort, buffer.AsSpan(0, received.ReceivedBytes));
            }
        }
    }

    private async Task PumpAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task runnable;
            lock (_gateway.Sync)
            {
                runnable = _gateway.Runnable;
            }

            // A frozen (or held) gateway leaves the guest's frames queued: the guest end stops reading.
            await runnable.WaitAsync(cancellationToken).ConfigureAwait(false);
            if (!await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return;
            }

            lock (_gateway.Sync)
            {
                if (_gateway.Frozen)
                {
                    continue;
                }

                for (var i = 0; i < BatchFrames && Outbound.TryRead(out var frame); i++)
                {
                    Counters.Transmitted(frame.Length);
                    _gateway.OnGuestFrame(frame.Span);
                    frame.Dispose();
                }

                _gateway.EndOfBatch();
            }
        }
    }
}
