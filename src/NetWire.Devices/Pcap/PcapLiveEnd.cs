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
/// drains the outbound queue in batches of up to 64 frames through a packet socket bound to the
/// interface, one sendmmsg(2) per batch (<see cref="PacketSocketSender"/>); where that socket
/// cannot be opened, one pcap_sendpacket per frame. With a <see cref="Ring"/> (a replay), the
/// batches come from the ring's slots instead of the queue, without a copy.
/// </remarks>
public sealed class PcapLiveEnd : WireEnd
{
    private const int PcapDirectionIn = 1;

    private readonly string _ifName;
    private readonly string? _filter;
    private readonly ILogger _logger;

    /// <summary>Opened in RunAsync; closed in ReleaseDeviceAsync.</summary>
    private LibPcapLiveDevice? _device;

    /// <summary>The batched injector; opened in RunAsync, closed in ReleaseDeviceAsync; null when only libpcap can send.</summary>
    private PacketSocketSender? _sender;

    /// <summary>Frames of the batch being sent, and which of them the kernel refused. Used by the write loop only.</summary>
    private readonly Frame[] _batch = new Frame[PacketSocketSender.MaxBatch];
    private readonly bool[] _refused = new bool[PacketSocketSender.MaxBatch];
    private readonly Action<int, string> _onRefused;

    /// <summary>Creates an end on interface <paramref name="ifName"/> with an optional BPF filter.</summary>
    public PcapLiveEnd(string name, string ifName, string? filter, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _ifName = ifName;
        _filter = filter;
        _logger = logger;
        _onRefused = OnRefused;
    }

    /// <summary>
    /// Only inject, never capture (what <c>netwire replay --into pcap:</c> needs): no capture
    /// handle is opened, so the kernel does not copy every injected frame to one only to have it
    /// discarded as outbound.
    /// </summary>
    public bool SendOnly { get; init; }

    /// <inheritdoc/>
    public override string Description => _filter is null ? $"pcap {_ifName}" : $"pcap {_ifName} filter '{_filter}'";

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        try
        {
            _sender = new PacketSocketSender(_ifName);
        }
        catch (IOException ex)
        {
            DevicesLog.SendFailed(_logger, Name, $"{ex.Message}; injecting with pcap_sendpacket instead");
        }

        if (SendOnly && _sender is not null)
        {
            await WriteAsync(null, cancellationToken).ConfigureAwait(false);
            return;
        }

        _device = Open();
        var device = _device;

        await DeviceThread.RunAllAsync(
            cancellationToken,
            token => DeviceThread.Run($"pcap-read {_ifName}", () => ReadLoop(device, receiver, token)),
            token => WriteAsync(device, token)).ConfigureAwait(false);
    }

    /// <summary>
    /// When set, the end injects the frames of this ring, from a dedicated thread, instead of
    /// those given to <see cref="WireEnd.SendPacket"/>; the ring's producer is the replay
    /// (docs/performance.md, "Replay").
    /// </summary>
    public FrameRing? Ring { get; init; }

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
        _sender?.Dispose();
        if (Ring?.Discard() is > 0 and var discarded)
        {
            Counters.Dropped(DropReason.Shutdown, discarded);
        }

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

    private Task WriteAsync(LibPcapLiveDevice? device, CancellationToken cancellationToken) =>
        Ring is { } ring
            ? DeviceThread.Run($"pcap-write {_ifName}", () => RingLoop(ring, device, cancellationToken))
            : WriteLoopAsync(device, cancellationToken);

    /// <summary>Injects the ring's frames a batch at a time (one sendmmsg per batch, from the slots) until cancelled.</summary>
    private void RingLoop(FrameRing ring, LibPcapLiveDevice? device, CancellationToken cancellationToken)
    {
        while (true)
        {
            var count = ring.WaitReadable(PacketSocketSender.MaxBatch, cancellationToken);
            if (count == 0)
            {
                // The replay is over and every frame sent; an end still runs until it is stopped.
                cancellationToken.WaitHandle.WaitOne();
                return;
            }

            if (_sender is { } sender)
            {
                sender.Send(ring, count, _onRefused);
            }
            else
            {
                for (var i = 0; i < count; i++)
                {
                    try
                    {
                        device!.SendPacket(ring.Span(i));
                    }
                    catch (PcapException ex)
                    {
                        OnRefused(i, ex.Message);
                    }
                }
            }

            var frames = 0;
            long bytes = 0;
            for (var i = 0; i < count; i++)
            {
                if (_refused[i])
                {
                    _refused[i] = false;
                }
                else
                {
                    frames++;
                    bytes += ring.Length(i);
                }
            }

            ring.Release(count);
            Counters.Transmitted(frames, bytes);
        }
    }

    private async Task WriteLoopAsync(LibPcapLiveDevice? device, CancellationToken cancellationToken)
    {
        while (await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            if (_sender is { } sender)
            {
                SendBatches(sender);
                continue;
            }

            while (Outbound.TryRead(out var frame))
            {
                try
                {
                    device!.SendPacket(frame.Span);
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

    /// <summary>Sends what is queued, a batch per sendmmsg, until the queue is empty.</summary>
    private void SendBatches(PacketSocketSender sender)
    {
        while (true)
        {
            var count = 0;
            while (count < _batch.Length && Outbound.TryRead(out var frame))
            {
                _batch[count++] = frame;
            }

            if (count == 0)
            {
                return;
            }

            var handedOver = false;
            try
            {
                sender.Send(_batch.AsSpan(0, count), _onRefused);
                handedOver = true;
            }
            finally
            {
                for (var i = 0; i < count; i++)
                {
                    if (_refused[i])
                    {
                        _refused[i] = false;
                    }
                    else if (handedOver)
                    {
                        Counters.Transmitted(_batch[i].Length);
                    }
                    else
                    {
                        // The socket was closed under the batch (the end is being disposed).
                        Counters.Dropped(DropReason.Shutdown);
                    }

                    _batch[i].Dispose();
                    _batch[i] = null!;
                }
            }
        }
    }

    private void OnRefused(int index, string reason)
    {
        _refused[index] = true;
        Counters.Dropped(DropReason.SendFailed);
        DevicesLog.SendFailed(_logger, Name, reason);
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
