using System.Net;
using NetWire.Core.Frames;

namespace NetWire.Core.Wire;

/// <summary>
/// One end of a wire, with the contract of SpiceNetWireInterface (<c>net_wire</c> 1.1):
/// frames go towards the device with <see cref="SendPacket"/>, called only while
/// <see cref="CanSendPacket"/> is true; frames the device produces are delivered to the
/// <see cref="IPacketReceiver"/> the end was attached to (spice_server_net_wire_recv_packet).
/// </summary>
public interface INetWire
{
    /// <summary>Interface name and version, checked at attach time.</summary>
    NetWireInterface Interface { get; }

    /// <summary>Short name used in logs, counters and captures ("guest", "host").</summary>
    string Name { get; }

    /// <summary>The guest's IPv4 address when this end knows it (get_ip), else null.</summary>
    IPAddress? GuestIp { get; }

    /// <summary>True while <see cref="SendPacket"/> will accept a frame without exceeding the end's bound.</summary>
    bool CanSendPacket { get; }

    /// <summary>Hands a frame to the end; ownership transfers. Call only while <see cref="CanSendPacket"/>.</summary>
    void SendPacket(Frame frame);

    /// <summary>Completes when <see cref="CanSendPacket"/> is (or may have become) true.</summary>
    ValueTask WaitCanSendPacketAsync(CancellationToken cancellationToken);

    /// <summary>
    /// For a producer on a dedicated thread that found <see cref="CanSendPacket"/> false: true
    /// when it may sleep on <paramref name="signal"/>, which the end sets directly once it has
    /// room for a run of frames (no thread-pool hand-off); false when it has room already or
    /// cannot do this (then the producer waits with <see cref="WaitCanSendPacketAsync"/>). The
    /// producer looks at <see cref="CanSendPacket"/> again whenever it wakes.
    /// </summary>
    bool TryArmRoomSignal(ThreadSignal signal) => false;

    /// <summary>True when <see cref="TryArmRoomSignal"/> can arm a signal (a device end's queue).</summary>
    bool HasRoomSignal => false;

    /// <summary>
    /// The end's send buffer for a source on a dedicated thread to read bursts of frames straight
    /// into (<see cref="IBurstSink"/>), bypassing the queue; null (the default) when the end has none.
    /// </summary>
    IBurstSink? BurstSink => null;

    /// <summary>
    /// Hands frames to the end in order while it can send them (<see cref="SendPacket"/> for
    /// each while <see cref="CanSendPacket"/>); returns how many it took, whose ownership
    /// transfers. A device end queues them together and wakes its device thread once for all.
    /// </summary>
    int SendPackets(ReadOnlySpan<Frame> frames)
    {
        var taken = 0;
        while (taken < frames.Length && CanSendPacket)
        {
            SendPacket(frames[taken++]);
        }

        return taken;
    }

    /// <summary>
    /// The offloads this end takes in frames sent to it (<see cref="Frame.Offload"/>); an end
    /// that does not say takes plain frames only. Known once the end runs its device.
    /// </summary>
    WireOffloads AcceptedOffloads => WireOffloads.None;
}

/// <summary>
/// A wire end as a <see cref="Link"/> runs it: the net_wire contract plus the device's own pump.
/// The link moves frames between two ends only through their <see cref="INetWire"/> members;
/// <see cref="RunAsync"/> reads the device and hands what it produced to the receiver.
/// </summary>
public interface IWireEnd : INetWire
{
    /// <summary>A one-line description of the device ("stream unix /run/netwire.sock, listening").</summary>
    string Description { get; }

    /// <summary>
    /// Opens the device and pumps frames both ways until <paramref name="cancellationToken"/>
    /// fires. Throws <see cref="WireSetupException"/> when the device cannot be opened.
    /// </summary>
    Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken);

    /// <summary>
    /// Notes the guest's address from a frame this end produced, for <see cref="INetWire.GuestIp"/>
    /// when the device itself does not know it. Called by the link for the guest end only.
    /// </summary>
    void LearnGuestIp(ReadOnlySpan<byte> frame);
}

/// <summary>
/// Where a wire end delivers the frames its device produced (RecvPacket). Sources that can be
/// paused wait on <see cref="WaitCanRecvPacketAsync"/> before reading; sources that cannot
/// (datagram sockets, live captures) check <see cref="CanRecvPacket"/> and count a drop.
/// </summary>
public interface IPacketReceiver
{
    /// <summary>True while <see cref="RecvPacket"/> will take a frame.</summary>
    bool CanRecvPacket { get; }

    /// <summary>Completes when <see cref="CanRecvPacket"/> is (or may have become) true.</summary>
    ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken);

    /// <summary>Takes ownership of a frame the device produced.</summary>
    void RecvPacket(Frame frame);

    /// <summary>
    /// For a source on a dedicated thread that found <see cref="CanRecvPacket"/> false: true when
    /// it may sleep on <paramref name="signal"/>, set directly once there is room for a run of
    /// frames; false when there is room already or the receiver cannot do this (then the source
    /// waits with <see cref="WaitCanRecvPacketAsync"/>). See <see cref="INetWire.TryArmRoomSignal"/>.
    /// </summary>
    bool TryArmRoomSignal(ThreadSignal signal) => false;

    /// <summary>True when <see cref="TryArmRoomSignal"/> can arm a signal (frames go to a device end's queue).</summary>
    bool HasRoomSignal => false;

    /// <summary>
    /// Where a source on a dedicated thread may read bursts of frames straight into the other end's
    /// send buffer (<see cref="INetWire.BurstSink"/>); null (the default) when frames must come
    /// through <see cref="RecvPacket"/>: a receiver that looks at each frame (a capture, learning
    /// the guest's address) has none.
    /// </summary>
    IBurstSink? BurstSink => null;

    /// <summary>
    /// Takes frames in order while it can (<see cref="RecvPacket"/> for each while
    /// <see cref="CanRecvPacket"/>); returns how many it took, whose ownership transfers. A burst
    /// handed on this way towards a device end wakes that end's device thread once.
    /// </summary>
    int RecvPackets(ReadOnlySpan<Frame> frames)
    {
        var taken = 0;
        while (taken < frames.Length && CanRecvPacket)
        {
            RecvPacket(frames[taken++]);
        }

        return taken;
    }

    /// <summary>
    /// The offloads frames handed to <see cref="RecvPacket"/> may carry (the other end's
    /// <see cref="INetWire.AcceptedOffloads"/> through a link). A device that can produce them
    /// (a TAP with a virtio-net header) turns them on only when they are taken here.
    /// </summary>
    WireOffloads AcceptedOffloads => WireOffloads.None;
}
