using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Metrics;
using NetWire.Core.Net;
using NetWire.Core.Taps;
using NetWire.Core.Wire;
using NetWire.Devices;
using NetWire.Devices.Qemu;
using NetWire.Devices.Tap;
using NetWire.Stack;

namespace NetWire.Appliance;

/// <summary>What one wire is made of: a guest end, a host end (a device, or the user-mode gateway) and its taps.</summary>
internal sealed record WireSetup(WireSpec Guest, WireSpec? Host, GatewayOptions? Gateway, string? CapturePath, string? StatusPath, int QueueFrames)
{
    /// <summary>Snap length and rotation of the capture (<c>--snaplen</c>, <c>--capture-max-mb</c>).</summary>
    public PcapNgWriterOptions CaptureOptions { get; init; } = new();
}

/// <summary>
/// One guest end linked to one host end, with its capture tap, metrics and status file: all
/// of <c>netwire bridge</c>, and the network part of <c>netwire serve</c>.
/// </summary>
/// <remarks>
/// Start creates the ends and starts the link; setup failures that only show when an end
/// opens its device (a busy socket, no permission for a TAP) end <see cref="Completion"/>
/// with a <see cref="WireSetupException"/>. Stop cancels the link and waits for it.
/// </remarks>
internal sealed class WireComponent : IServeComponent
{
    private readonly WireSetup _setup;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly WireMetrics _metrics = new();
    private WireEnd? _guest;
    private WireEnd? _host;
    private PcapNgWriter? _capture;
    private Task _completion = Task.CompletedTask;

    /// <summary>Status writes that failed since the last one that worked; written by the status writer only.</summary>
    private long _statusFailures;

    /// <summary>Completed at stop (or dispose); a handed-over wire's <see cref="Completion"/> waits for it instead of ending.</summary>
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _handedOver;

    public WireComponent(WireSetup setup, ILoggerFactory loggers)
    {
        _setup = setup;
        _loggers = loggers;
        _logger = loggers.CreateLogger("NetWire.Wire");
    }

    public string Name => "wire";

    public Task Completion => _completion;

    /// <summary>The guest end then the host end; empty before start.</summary>
    public IReadOnlyList<WireEnd> Ends => _guest is null || _host is null ? [] : [_guest, _host];

    /// <summary>The guest end (after start).</summary>
    public WireEnd? Guest => _guest;

    /// <summary>The gateway when the host end is the user-mode gateway.</summary>
    public GatewayEnd? Gateway => _host as GatewayEnd;

    /// <summary>A migration target's wire: its gateway takes no guest frame until released (set before start).</summary>
    public bool HoldGateway { get; set; }

    /// <summary>True once a completed migration took this wire's state: its ends are closed (a TAP or a guest socket is free for the target).</summary>
    public bool HandedOver => Volatile.Read(ref _handedOver) != 0;

    /// <summary>
    /// The migration moved everything this wire carried: the link stops and the guest end closes,
    /// without <see cref="Completion"/> ending (the appliance keeps serving until it is quit).
    /// </summary>
    public async Task HandOverAsync()
    {
        if (Interlocked.Exchange(ref _handedOver, 1) != 0)
        {
            return;
        }

        ApplianceLog.WireHandedOver(_logger);
        await _stop.CancelAsync().ConfigureAwait(false);
    }

    /// <summary>Creates the ends and the capture file and starts the link. Throws <see cref="IOException"/> when the capture cannot be written.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        EnsureSocketDirectory(_setup.Guest);
        if (_setup.CapturePath is { } capturePath)
        {
            try
            {
                _capture = PcapNgWriter.Create(capturePath, _setup.CaptureOptions);
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or ArgumentException)
            {
                throw new IOException(ex.Message, ex);
            }

            ApplianceLog.Capturing(_logger, capturePath);
        }

        _guest = _setup.Guest.CreateEnd("guest", FramePool.Shared, _setup.QueueFrames, _loggers);
        _host = _setup.Host is { } host
            ? host.CreateEnd("host", FramePool.Shared, _setup.QueueFrames, _loggers)
            : new GatewayEnd("host", _setup.Gateway!, FramePool.Shared, _setup.QueueFrames, TimeProvider.System, _loggers.CreateLogger<GatewayEnd>());
        if (HoldGateway && _host is GatewayEnd held)
        {
            held.Hold();
        }

        if (HoldGateway && _guest is TapEnd tap)
        {
            // The source has the TAP until it hands its wire over (docs/migration.md, "A namespace peer").
            tap.WaitWhileBusy = true;
        }

        _metrics.Register(_guest);
        _metrics.Register(_host);
        var link = new Link(_guest, _host, _capture, _loggers.CreateLogger<Link>());
        var running = link.RunAsync(_stop.Token);

        // After the ends' synchronous start (a listening guest socket is bound by now): a QEMU 7.2
        // stream client started on this line must find it, since QEMU does not retry a connect.
        ApplianceLog.BridgeUp(_logger, _guest.Description, _host.Description);
        _completion = RunAsync(running);
        _ = AnnounceAsync(_guest, _logger);
        return Task.CompletedTask;
    }

    public async Task StopAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _stopped.TrySetResult();
        try
        {
            await _completion.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WireSetupException or NetWireVersionException || IoErrors.IsIoFailure(ex))
        {
            // Reported by whoever watched Completion.
        }
    }

    private string RunState => HandedOver ? "migrated" : "running";

    /// <summary>Writes the appliance's other parts into the status (serve's SPICE server and migration target), or null.</summary>
    public Action<System.Text.Json.Utf8JsonWriter>? StatusSections { get; set; }

    /// <summary>The status JSON (docs/cli.md) as of now.</summary>
    public byte[] Status(string state) => StatusReport.ToJson(Ends, _capture, _setup.CapturePath, state, StatusSections);

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_guest is not null)
        {
            await _guest.DisposeAsync().ConfigureAwait(false);
        }

        if (_host is not null)
        {
            await _host.DisposeAsync().ConfigureAwait(false);
        }

        _capture?.Dispose();
        if (_setup.StatusPath is { } statusPath && _guest is not null)
        {
            WriteStatus(statusPath, "stopped");
        }

        _metrics.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(Task running)
    {
        using var ticker = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        var ticks = 0;
        while (!running.IsCompleted)
        {
            var tick = ticker.WaitForNextTickAsync(CancellationToken.None).AsTask();
            await Task.WhenAny(running, tick).ConfigureAwait(false);
            _capture?.Flush();
            if (_setup.StatusPath is { } statusPath && ++ticks % 4 == 0)
            {
                WriteStatus(statusPath, RunState);
            }
        }

        if (HandedOver)
        {
            await running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);

            // The device is the target's now: a TAP it waits for, a guest socket path it may reuse.
            if (_guest is not null)
            {
                await _guest.DisposeAsync().ConfigureAwait(false);
            }

            if (_setup.StatusPath is { } statusPath)
            {
                WriteStatus(statusPath, RunState);
            }

            // The appliance goes on (clients leaving, quit) until it is stopped.
            await _stopped.Task.ConfigureAwait(false);
            return;
        }

        await running.ConfigureAwait(false);
    }

    /// <summary>Status writes that failed so far (its folder removed, a full disk, no permission).</summary>
    public long StatusWriteFailures { get; private set; }

    /// <summary>
    /// Writes the status file. A failed write (its folder removed, a full disk) is logged once and
    /// counted, never fatal: the file is a report, the wire is the work.
    /// </summary>
    private void WriteStatus(string path, string state)
    {
        try
        {
            StatusReport.WriteAtomically(path, Status(state));
            if (_statusFailures > 0)
            {
                ApplianceLog.StatusWriteRecovered(_logger, path, _statusFailures);
                _statusFailures = 0;
            }
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            StatusWriteFailures++;
            if (_statusFailures++ == 0)
            {
                ApplianceLog.StatusWriteFailed(_logger, path, ex.Message);
            }
        }
    }

    private static async Task AnnounceAsync(WireEnd guest, ILogger logger)
    {
        switch (guest)
        {
            case QemuStreamEnd stream:
                await Task.WhenAny(stream.Ready, Task.Delay(2000)).ConfigureAwait(false);
                if (!stream.Ready.IsFaulted)
                {
                    ApplianceLog.QemuHint(logger, stream.QemuNetdev());
                }

                break;
            case QemuDgramEnd dgram:
                ApplianceLog.QemuHint(logger, dgram.QemuNetdev());
                break;
        }
    }

    private static void EnsureSocketDirectory(WireSpec spec)
    {
        if (spec.EndPoint is System.Net.Sockets.UnixDomainSocketEndPoint unix && !spec.Connect)
        {
            var dir = Path.GetDirectoryName(Path.GetFullPath(unix.ToString()!));
            if (dir is "/run/netwire" && !Directory.Exists(dir))
            {
                Directory.CreateDirectory(dir);
            }
        }
    }
}
