using System.Diagnostics;
using System.Net.Sockets;
using SharpPcap.Tunneling;

namespace NetWire.Bench;

/// <summary>What to measure, from the command line.</summary>
internal sealed record MeasureOptions(
    string Scenario,
    string Direction,
    int Size,
    string Tap,
    string? Socket,
    string? StatusFile,
    TimeSpan Warmup,
    TimeSpan Window,
    int FlowWindow,
    int Run,
    TimeSpan QuietTimeout);

/// <summary>
/// Sets up one scenario's loads, lets them warm up, counts frames over a fixed window and
/// reads the costs around it.
/// </summary>
/// <remarks>
/// <para>
/// Rates come from counters outside the code under test where possible: the TAP's rx_packets
/// for frames towards the host, the bench's own reader for frames towards the guest.
/// </para>
/// <para>
/// Load threads block in system calls, so they are not torn down: the process exits right after
/// the result is printed and the kernel closes every descriptor.
/// </para>
/// </remarks>
internal sealed class Measurement
{
    /// <summary>Busy cores tolerated before a measurement starts.</summary>
    private const double MaxBusyCoresBefore = 0.1;

    private static readonly TimeSpan s_setupTimeout = TimeSpan.FromSeconds(20);

    private readonly MeasureOptions _options;
    private readonly StopFlag _stop = new();
    private readonly byte[] _frame;
    private Func<long> _count = () => 0;

    /// <summary>A TAP fd held open and never read (the generator-alone case towards the guest).</summary>
    private TapFd? _idleTap;

    public Measurement(MeasureOptions options)
    {
        _options = options;
        _frame = TestFrame.Create(options.Size);
    }

    /// <summary>Runs the scenario and returns its result.</summary>
    public BenchResult Run()
    {
        var bridge = _options.Scenario == "bridge";
        if (bridge && (_options.Socket is null || _options.StatusFile is null))
        {
            throw new ArgumentException("the bridge scenario needs --socket and --status-file");
        }

        // Another process's burst (a build, a test run) would halve what two cores can do.
        var busyBefore = Probes.WaitForQuiet(MaxBusyCoresBefore, _options.QuietTimeout);
        var txDroppedBase = Probes.InterfaceCounter(_options.Tap, "tx_dropped");
        switch ((_options.Direction, _options.Scenario))
        {
            case ("g2h", "bridge"):
                StartBridgeTowardsHost();
                break;
            case ("g2h", "raw"):
                StartRawTowardsHost();
                break;
            case ("g2h", "sharppcap"):
                StartSharpPcapTowardsHost();
                break;
            case ("g2h", "generator"):
                StartGeneratorTowardsHost();
                break;
            case ("h2g", "bridge"):
                StartBridgeTowardsGuest(txDroppedBase);
                break;
            case ("h2g", "raw"):
                StartRawTowardsGuest(txDroppedBase);
                break;
            case ("h2g", "sharppcap"):
                StartSharpPcapTowardsGuest(txDroppedBase);
                break;
            case ("h2g", "generator"):
                StartGeneratorTowardsGuest();
                break;
            default:
                throw new ArgumentException($"unknown scenario {_options.Scenario} / direction {_options.Direction}");
        }

        Thread.Sleep(_options.Warmup);

        StatusSnapshot? status0 = null;
        if (bridge)
        {
            status0 = StatusSnapshot.WaitFresh(_options.StatusFile!, StatusSnapshot.TryRead(_options.StatusFile!), s_setupTimeout);
        }

        var pid = status0?.Pid;
        var drops0 = Probes.InterfaceCounter(_options.Tap, "tx_dropped");
        var cpu0 = pid is null ? 0 : Probes.CpuSeconds(pid.Value);
        var own0 = Probes.OwnCpuSeconds();
        var machine0 = Probes.MachineBusySeconds();
        var frames0 = _count();
        var clock = Stopwatch.StartNew();

        Thread.Sleep(_options.Window);

        var frames1 = _count();
        var elapsed = clock.Elapsed.TotalSeconds;
        var own1 = Probes.OwnCpuSeconds();
        var machine1 = Probes.MachineBusySeconds();
        var cpu1 = pid is null ? 0 : Probes.CpuSeconds(pid.Value);
        var drops1 = Probes.InterfaceCounter(_options.Tap, "tx_dropped");
        StatusSnapshot? status1 = null;
        if (bridge)
        {
            status1 = StatusSnapshot.WaitFresh(_options.StatusFile!, StatusSnapshot.TryRead(_options.StatusFile!), s_setupTimeout);
        }

        _stop.Set();

        var frames = frames1 - frames0;
        var perMillion = frames > 0 ? 1e6 / frames : double.NaN;
        long? allocBytes = null, allocFrames = null;
        if (status0 is not null && status1 is not null)
        {
            allocBytes = status1.GcAllocatedBytes - status0.GcAllocatedBytes;
            allocFrames = _options.Direction == "g2h"
                ? status1.HostTxFrames - status0.HostTxFrames
                : status1.GuestTxFrames - status0.GuestTxFrames;
        }

        return new BenchResult
        {
            Scenario = _options.Scenario,
            Direction = _options.Direction,
            Size = _options.Size,
            Run = _options.Run,
            Seconds = Math.Round(elapsed, 3),
            Frames = frames,
            Fps = Math.Round(frames / elapsed),
            BenchCpuPerMillion = Math.Round((own1 - own0) * perMillion, 3),
            OthersBusyCores = Math.Round(Math.Max(0, (machine1 - machine0) - (own1 - own0) - (cpu1 - cpu0)) / elapsed, 3),
            BusyCoresBefore = Math.Round(busyBefore, 3),
            NetWireCpuPerMillion = pid is null ? null : Math.Round((cpu1 - cpu0) * perMillion, 3),
            AllocBytes = allocBytes,
            AllocFrames = allocFrames,
            AllocBytesPerFrame = allocFrames is > 0 ? Math.Round((double)allocBytes!.Value / allocFrames.Value, 4) : null,
            NetWireDrops = status0 is not null && status1 is not null ? status1.Drops - status0.Drops : null,
            KernelDrops = _options.Direction == "h2g" ? drops1 - drops0 : null,
        };
    }

    private void StartBridgeTowardsHost()
    {
        var socket = Loads.ConnectUnix(_options.Socket!, s_setupTimeout);
        WaitForCarrier();
        var batch = TestFrame.StreamBatch(_frame, Loads.StreamBatchBytes);
        Loads.Start("guest-writer", () => Loads.StreamWriter(socket, batch, _stop));
        _count = () => Probes.InterfaceCounter(_options.Tap, "rx_packets");
    }

    private void StartRawTowardsHost()
    {
        var tap = TapFd.Open(_options.Tap, nonBlocking: false);
        Loads.Start("tap-writer", () => Loads.TapWriter(tap, _frame, _stop));
        _count = () => Probes.InterfaceCounter(_options.Tap, "rx_packets");
    }

    private void StartSharpPcapTowardsHost()
    {
        var device = Loads.OpenTunnelDevice(_options.Tap);
        Loads.Start("tunnel-writer", () => Loads.TunnelWriter(device, _frame, _stop));
        _count = () => Probes.InterfaceCounter(_options.Tap, "rx_packets");
    }

    private void StartGeneratorTowardsHost()
    {
        // The guest-side writer alone: its socket's other end is a reader that only counts bytes.
        var path = Path.Combine(Path.GetTempPath(), $"netwire-bench-{Environment.ProcessId}.sock");
        File.Delete(path);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var writer = Loads.ConnectUnix(path, s_setupTimeout);
        var sink = listener.Accept();
        File.Delete(path);
        var window = new FlowWindow(0);
        var batch = TestFrame.StreamBatch(_frame, Loads.StreamBatchBytes);
        Loads.Start("sink", () => Loads.StreamReader(sink, _frame.Length, window, _stop));
        Loads.Start("guest-writer", () => Loads.StreamWriter(writer, batch, _stop));
        _count = () => window.Received;
    }

    private void StartBridgeTowardsGuest(long txDroppedBase)
    {
        var socket = Loads.ConnectUnix(_options.Socket!, s_setupTimeout);
        WaitForCarrier();
        var window = new FlowWindow(_options.FlowWindow);
        Loads.Start("guest-reader", () => Loads.StreamReader(socket, _frame.Length, window, _stop));
        StartSender(window, txDroppedBase);
        _count = () => window.Received;
    }

    private void StartRawTowardsGuest(long txDroppedBase)
    {
        var tap = TapFd.Open(_options.Tap, nonBlocking: true);
        var window = new FlowWindow(_options.FlowWindow);
        Loads.Start("tap-reader", () => Loads.TapReader(tap, window, _stop));
        StartSender(window, txDroppedBase);
        _count = () => window.Received;
    }

    private void StartSharpPcapTowardsGuest(long txDroppedBase)
    {
        var device = Loads.OpenTunnelDevice(_options.Tap);
        var window = new FlowWindow(_options.FlowWindow);
        device.OnPacketArrival += (_, _) => window.Add(1);
        device.StartCapture();
        StartSender(window, txDroppedBase);
        _count = () => window.Received;
    }

    private void StartGeneratorTowardsGuest()
    {
        // The sender alone: the TAP is attached (so it has carrier) but nobody reads it, and the
        // TAP drops what does not fit in its queue. Through the qdisc, so that a drop is not an
        // error that ends the batch: a lower bound of the sender's rate with the qdisc bypassed.
        _idleTap = TapFd.Open(_options.Tap, nonBlocking: true);
        var sender = new PacketSender(_options.Tap, _frame, bypassQdisc: false);
        Loads.Start("sender", () => sender.Run(_stop, null, static () => 0));
        _count = () => sender.Sent;
    }

    private void StartSender(FlowWindow window, long txDroppedBase)
    {
        var sender = new PacketSender(_options.Tap, _frame);
        var tap = _options.Tap;
        Loads.Start("sender", () => sender.Run(_stop, window, () => Probes.InterfaceCounter(tap, "tx_dropped") - txDroppedBase));
    }

    private void WaitForCarrier()
    {
        var deadline = DateTime.UtcNow + s_setupTimeout;
        while (!Probes.HasCarrier(_options.Tap))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{_options.Tap} has no carrier: is netwire attached to it?");
            }

            Thread.Sleep(20);
        }
    }
}
