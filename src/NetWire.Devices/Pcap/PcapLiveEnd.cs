using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using SharpPcap;
using SharpPcap.LibPcap;

namespace NetWire.Devices.Pcap;

/// <summary>
/// A host end on a live network interface through libpcap (SharpPcap): frames captured on the
/// interface go into the wire, frames from the wire are injected.
/// </summary>
/// <remarks>
/// How this works: the device is opened promiscuous in immediate mode with a short read
/// timeout, an optional BPF filter, and capture direction limited to inbound (pcap_setdirection)
/// so injected frames are not captured back. A dedicated thread reads with GetNextPacket; a
/// live capture cannot be paused, so when the receiver is full the frame is dropped and counted
/// (PeerFull); what libpcap or the kernel dropped is read from pcap_stats (Kernel). Injection
/// is one pcap_sendpacket per frame from the outbound queue.
/// </remarks>
public sealed class PcapLiveEnd : WireEnd
{
    private const int PcapDirectionIn = 1;

    private readonly string _ifName;
    private readonly string? _filter;
    private readonly ILogger _logger;

    /// <summary>Opened in RunAsync; closed in ReleaseDeviceAsync.</summary>
    private LibPcapLiveDevice? _device;

    /// <summary>Creates an end on interface <paramref name="ifName"/> with an optional BPF filter.</summary>
    public PcapLiveEnd(string name, string ifName, string? filter, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _ifName = ifName;
        _filter = filter;
        _logger = logger;
    }

    /// <inheritdoc/>
    public override string Description => _filter is null ? $"pcap {_ifName}" : $"pcap {_ifName} filter '{_filter}'";

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        _device = Open();
        var device = _device;
        await DeviceThread.RunAllAsync(
            cancellationToken,
            token => DeviceThread.Run($"pcap-read {_ifName}", () => ReadLoop(device, receiver, token)),
            token => WriteLoopAsync(device, token)).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override void RefreshCounters()
    {
        var device = _device;
        if (device is null || !device.Opened)
        {
            return;
        }

        try
        {
            var stats = device.Statistics;
            Counters.ObserveKernelDrops((long)stats.DroppedPackets + stats.InterfaceDroppedPackets);
        }
        catch (PcapException)
        {
        }
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        RefreshCounters();
        _device?.Close();
        return default;
    }

    private LibPcapLiveDevice Open()
    {
        LibPcapLiveDevice? device;
        try
        {
            device = LibPcapLiveDeviceList.New().FirstOrDefault(d => d.Name == _ifName);
        }
        catch (Exception ex) when (ex is DllNotFoundException or PcapException or TypeInitializationException)
        {
            throw new WireSetupException($"libpcap is not usable: {ex.Message} (install libpcap0.8)", ex);
        }

        if (device is null)
        {
            throw new WireSetupException($"no capture device named '{_ifName}' (is the interface there, and are you root or CAP_NET_RAW?)");
        }

        try
        {
            device.Open(new DeviceConfiguration
            {
                Mode = DeviceModes.Promiscuous,
                ReadTimeout = 100,
                Snaplen = 262_144,
                Immediate = true,
                BufferSize = 8 << 20,
            });
        }
        catch (Exception ex) when (ex is PcapException or InvalidOperationException)
        {
            throw new WireSetupException($"cannot open '{_ifName}' for capture: {ex.Message} (capturing needs root or CAP_NET_RAW)", ex);
        }

        if (_filter is not null)
        {
            try
            {
                device.Filter = _filter;
            }
            catch (PcapException ex)
            {
                device.Close();
                throw new WireSetupException($"bad BPF filter '{_filter}': {ex.Message}", ex);
            }
        }

        if (!TrySetDirectionIn(device))
        {
            DevicesLog.PcapNoDirection(_logger, _ifName);
        }

        DevicesLog.PcapOpened(_logger, _ifName, _filter is null ? string.Empty : $" with filter '{_filter}'");
        return device;
    }

    private void ReadLoop(LibPcapLiveDevice device, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            GetPacketStatus status;
            PacketCapture capture;
            try
            {
                status = device.GetNextPacket(out capture);
            }
            catch (PcapException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            if (status == GetPacketStatus.ReadTimeout)
            {
                continue;
            }

            if (status != GetPacketStatus.PacketRead)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                throw new IOException($"capture on '{_ifName}' failed: {device.LastError}");
            }

            var data = capture.Data;
            if (data.Length < FramePool.MinFrameLength || data.Length > FramePool.MaxFrameLength)
            {
                Counters.Dropped(DropReason.BadLength);
                continue;
            }

            if (!receiver.CanRecvPacket)
            {
                Counters.Dropped(DropReason.PeerFull);
                continue;
            }

            var frame = Pool.Rent(data);
            Counters.Received(data.Length);
            receiver.RecvPacket(frame);
        }
    }

    private async Task WriteLoopAsync(LibPcapLiveDevice device, CancellationToken cancellationToken)
    {
        while (await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (Outbound.TryRead(out var frame))
            {
                try
                {
                    device.SendPacket(frame.Span);
                    Counters.Transmitted(frame.Length);
                }
                catch (PcapException ex)
                {
                    Counters.Dropped(DropReason.SendFailed);
                    DevicesLog.SendFailed(_logger, Name, ex.Message);
                }
                finally
                {
                    frame.Dispose();
                }
            }
        }
    }

    private static bool TrySetDirectionIn(LibPcapLiveDevice device)
    {
        try
        {
            return PcapSetDirection(device.Handle.DangerousGetHandle(), PcapDirectionIn) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [DllImport("libpcap.so.0.8", EntryPoint = "pcap_setdirection")]
    private static extern int PcapSetDirection(IntPtr pcap, int direction);
}
