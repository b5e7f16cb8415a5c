using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Taps;

namespace NetWire.Core.Wire;

/// <summary>
/// Joins a guest end and a host end: what one receives is sent to the other, under the
/// net_wire rule that a frame is handed on only while the other end can send it. Optional
/// capture taps see every frame that crosses, with its direction.
/// </summary>
public sealed class Link
{
    private readonly IWireEnd _guest;
    private readonly IWireEnd _host;
    private readonly ICaptureSink? _capture;
    private readonly ILogger _logger;

    /// <summary>Creates a link; throws <see cref="NetWireVersionException"/> if an end's interface cannot be attached.</summary>
    public Link(IWireEnd guest, IWireEnd host, ICaptureSink? capture, ILogger logger)
    {
        Attach(guest);
        Attach(host);
        _guest = guest;
        _host = host;
        _capture = capture;
        _logger = logger;
    }

    /// <summary>Runs both ends until cancelled or until one of them fails; the first failure is rethrown.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        IPacketReceiver towardsHost = new GuestForwarder(_guest, _host);
        IPacketReceiver towardsGuest = new Forwarder(_guest);
        if (_capture is not null)
        {
            var id = _capture.AddInterface($"{_guest.Name}<->{_host.Name}", _guest.Description + " <-> " + _host.Description);
            towardsHost = new CaptureTap(towardsHost, _capture, id, CaptureDirection.Inbound);
            towardsGuest = new CaptureTap(towardsGuest, _capture, id, CaptureDirection.Outbound);
        }

        var guestTask = RunEndAsync(_guest, towardsHost, linked);
        var hostTask = RunEndAsync(_host, towardsGuest, linked);
        await Task.WhenAll(guestTask, hostTask).ConfigureAwait(false);
    }

    private async Task RunEndAsync(IWireEnd end, IPacketReceiver receiver, CancellationTokenSource linked)
    {
        try
        {
            await end.RunAsync(receiver, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (IoErrors.IsIoFailure(ex))
        {
            // The device went away (a TAP deleted, a socket gone): the verb reports it with its
            // exit code, so the log says what happened without a stack trace.
            WireLog.EndStopped(_logger, end.Name, ex.Message);
            await linked.CancelAsync().ConfigureAwait(false);
            throw;
        }
        catch (Exception ex)
        {
            WireLog.EndFailed(_logger, end.Name, ex);
            await linked.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private static void Attach(INetWire end)
    {
        if (!NetWireInterface.IsSupported(end.Interface, out var reason))
        {
            throw new NetWireVersionException($"cannot attach wire end '{end.Name}': {reason}");
        }
    }

    /// <summary>Delivers frames to the other end; the plain net_wire hand-over.</summary>
    private sealed class Forwarder(INetWire target) : IPacketReceiver
    {
        public bool CanRecvPacket => target.CanSendPacket;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => target.WaitCanSendPacketAsync(cancellationToken);

        public void RecvPacket(Frame frame) => target.SendPacket(frame);

        public int RecvPackets(ReadOnlySpan<Frame> frames) => target.SendPackets(frames);

        public WireOffloads AcceptedOffloads => target.AcceptedOffloads;

        public bool TryArmRoomSignal(ThreadSignal signal) => target.TryArmRoomSignal(signal);

        public bool HasRoomSignal => target.HasRoomSignal;

        public IBurstSink? BurstSink => target.BurstSink;
    }

    /// <summary>
    /// Delivers the guest's frames to the host end, learning the guest's address on the way (so it
    /// has no <see cref="IPacketReceiver.BurstSink"/>: every frame must pass through it).
    /// </summary>
    private sealed class GuestForwarder(IWireEnd guest, INetWire target) : IPacketReceiver
    {
        public bool CanRecvPacket => target.CanSendPacket;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => target.WaitCanSendPacketAsync(cancellationToken);

        public void RecvPacket(Frame frame)
        {
            guest.LearnGuestIp(frame.Span);
            target.SendPacket(frame);
        }

        public WireOffloads AcceptedOffloads => target.AcceptedOffloads;

        public bool TryArmRoomSignal(ThreadSignal signal) => target.TryArmRoomSignal(signal);

        public bool HasRoomSignal => target.HasRoomSignal;
    }
}
