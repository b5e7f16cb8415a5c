using System.Net;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Packets;

namespace NetWire.Core.Wire;

/// <summary>
/// Base of every device-backed wire end: an outbound <see cref="FrameQueue"/> gives
/// <see cref="CanSendPacket"/> and <see cref="SendPacket"/> their meaning, and
/// <see cref="RunAsync"/> pumps the device until cancelled.
/// </summary>
/// <remarks>
/// A derived end reads its device only while the receiver can take frames (or counts a drop
/// where the device cannot be paused), and drains <see cref="Outbound"/> into the device.
/// </remarks>
public abstract class WireEnd : IWireEnd, IAsyncDisposable
{
    /// <summary>Default outbound bound: 256 frames, at most 17 MiB of the largest frames.</summary>
    public const int DefaultQueueCapacity = 256;

    private int _disposed;

    /// <summary>Creates an end with a bounded outbound queue.</summary>
    protected WireEnd(string name, FramePool pool, int queueCapacity)
    {
        Name = name;
        Pool = pool;
        Outbound = new FrameQueue(queueCapacity);
    }

    /// <inheritdoc/>
    public virtual NetWireInterface Interface => NetWireInterface.Current;

    /// <inheritdoc/>
    public string Name { get; }

    /// <summary>
    /// The guest's IPv4 address (get_ip): what the device knows, else what was learned from the
    /// guest's own frames (ARP sender address, IPv4 source), else null.
    /// </summary>
    public virtual IPAddress? GuestIp
    {
        get
        {
            var learned = Volatile.Read(ref _learnedGuestIp);
            return learned == 0 ? null : Ip.ToAddress(learned);
        }
    }

    /// <summary>Learned guest IPv4 address, host order (<see cref="Ip"/>); 0 while unknown. Written by the link.</summary>
    private uint _learnedGuestIp;

    /// <summary>
    /// The guest's global IPv6 addresses (not link-local): what the device knows, else what was
    /// learned from the sources of the guest's own IPv6 packets; at most
    /// <see cref="Ipv6AddressSet.Capacity"/>, the first learned first. Allocates.
    /// </summary>
    public virtual IReadOnlyList<IPAddress> GuestIpv6 => _learnedGuestIpv6.ToList();

    /// <summary>Learned guest IPv6 addresses. Written by the link.</summary>
    private readonly Ipv6AddressSet _learnedGuestIpv6 = new();

    /// <summary>This end's counters.</summary>
    public WireCounters Counters { get; } = new();

    /// <inheritdoc/>
    public abstract string Description { get; }

    /// <summary>Frames waiting to be written to the device.</summary>
    protected FrameQueue Outbound { get; }

    /// <summary>Where received frames are rented.</summary>
    protected FramePool Pool { get; }

    /// <summary>Frames queued towards the device now (at most the queue capacity).</summary>
    public int QueuedFrames => Outbound.Count;

    /// <inheritdoc/>
    public bool CanSendPacket => Outbound.CanWrite;

    /// <inheritdoc/>
    public void SendPacket(Frame frame)
    {
        if (!Outbound.TryWrite(frame))
        {
            Counters.Dropped(DropReason.Overrun);
            frame.Dispose();
        }
    }

    /// <inheritdoc/>
    public virtual WireOffloads AcceptedOffloads => WireOffloads.None;

    /// <inheritdoc/>
    public ValueTask WaitCanSendPacketAsync(CancellationToken cancellationToken) => Outbound.WaitWritableAsync(cancellationToken);

    /// <inheritdoc/>
    public bool TryArmRoomSignal(ThreadSignal signal) => HasRoomSignal && Outbound.TryArmRoomSignal(signal);

    /// <inheritdoc/>
    public virtual bool HasRoomSignal => true;

    /// <inheritdoc/>
    public virtual IBurstSink? BurstSink => null;

    /// <inheritdoc/>
    public int SendPackets(ReadOnlySpan<Frame> frames) => Outbound.TryWriteMany(frames);

    /// <inheritdoc/>
    public abstract Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken);

    /// <summary>
    /// Notes the guest's address from a frame this end produced: the sender of an ARP packet or
    /// the source of an IPv4 packet (0.0.0.0, as in a DHCP DISCOVER, is not an address), or the
    /// source of an IPv6 packet when it is a global unicast one (not ::, link-local, multicast or
    /// IPv4-mapped).
    /// </summary>
    public void LearnGuestIp(ReadOnlySpan<byte> frame)
    {
        if (!EthernetFrame.TryParse(frame, out var ethernet))
        {
            return;
        }

        uint address;
        switch (ethernet.EtherType)
        {
            case EtherType.Ipv4 when Ipv4Packet.TryParse(ethernet.Payload, out var ip):
                address = ip.Source;
                break;
            case EtherType.Arp when ArpPacket.TryParse(ethernet.Payload, out var arp):
                address = arp.SenderProtocolAddress;
                break;
            case EtherType.Ipv6 when Ipv6Packet.TryParse(ethernet.Payload, out var ip6):
                var source = ip6.Source;
                if (!source.IsIpv6Unspecified && !source.IsIpv6LinkLocal && !source.IsIpv6Multicast && !source.IsIpv4 && source != IpAddr.Ipv6Loopback)
                {
                    _learnedGuestIpv6.Learn(source);
                }

                return;
            default:
                return;
        }

        if (address != 0 && address != 0xffffffff && Volatile.Read(ref _learnedGuestIp) != address)
        {
            Volatile.Write(ref _learnedGuestIp, address);
        }
    }

    /// <summary>Refreshes counters kept by the kernel or a library (TAP drops, capture statistics).</summary>
    public virtual void RefreshCounters()
    {
    }

    /// <summary>Releases the device; queued outbound frames are returned and counted as shutdown drops.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await ReleaseDeviceAsync().ConfigureAwait(false);
        var discarded = Outbound.CompleteAndDrain();
        if (discarded > 0)
        {
            Counters.Dropped(DropReason.Shutdown, discarded);
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the device's resources.</summary>
    protected virtual ValueTask ReleaseDeviceAsync() => default;
}

/// <summary>A wire end's device could not be opened (bad address, permission, busy). The message is for the user.</summary>
public sealed class WireSetupException : Exception
{
    /// <summary>Creates the exception.</summary>
    public WireSetupException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    public WireSetupException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
