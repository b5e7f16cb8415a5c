using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;

namespace NetWire.Devices.Qemu;

/// <summary>
/// A guest end on QEMU's datagram backends (<c>-netdev dgram</c>, <c>-netdev socket,udp=</c>):
/// one datagram is one Ethernet frame, no header (protocol.md §8.2).
/// </summary>
/// <remarks>
/// How this works: NetWire binds its local address and sends to QEMU's. Datagrams from any
/// other address are dropped (ForeignSource): a UDP port is open to every local process.
/// A unix datagram socket can be paused (the kernel blocks QEMU's sendto and QEMU stops the
/// guest's queue), so with unix the receive loop waits for the receiver. A UDP socket cannot
/// be paused without the kernel dropping silently, so with UDP NetWire keeps reading and counts
/// a PeerFull drop when the receiver is full. Frames to QEMU go out with one sendto each.
/// Both loops run on dedicated threads with blocking calls: an async sendto towards a full unix
/// datagram peer spins in the runtime (the socket polls writable while sendto says EAGAIN),
/// where a blocking one sleeps in the kernel until the peer reads.
/// </remarks>
public sealed class QemuDgramEnd : WireEnd
{
    private const int PeerAbsentRetryMs = 100;

    private readonly EndPoint _local;
    private readonly EndPoint _remote;
    private readonly ILogger _logger;
    private readonly bool _isUnix;

    /// <summary>Bound in RunAsync; disposed in ReleaseDeviceAsync.</summary>
    private Socket? _socket;

    /// <summary>Creates a datagram end bound to <paramref name="local"/>, sending to <paramref name="remote"/>.</summary>
    public QemuDgramEnd(string name, EndPoint local, EndPoint remote, FramePool pool, int queueCapacity, ILogger logger)
        : base(name, pool, queueCapacity)
    {
        _local = local;
        _remote = remote;
        _logger = logger;
        _isUnix = local is UnixDomainSocketEndPoint;
    }

    /// <inheritdoc/>
    public override string Description => $"dgram {Describe(_local)} = {Describe(_remote)}";

    /// <summary>The QEMU option that attaches a guest NIC to this end.</summary>
    public string QemuNetdev(string id = "n0") => (_local, _remote) switch
    {
        (UnixDomainSocketEndPoint l, UnixDomainSocketEndPoint r) =>
            $"dgram,id={id},local.type=unix,local.path={r},remote.type=unix,remote.path={l}",
        (IPEndPoint l, IPEndPoint r) =>
            $"dgram,id={id},local.type=inet,local.host={r.Address},local.port={r.Port},remote.type=inet,remote.host={l.Address},remote.port={l.Port}",
        _ => $"dgram,id={id},...",
    };

    /// <inheritdoc/>
    public override async Task RunAsync(IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        _socket = Bind();
        DevicesLog.Listening(_logger, Name, Describe(_socket.LocalEndPoint ?? _local));
        var socket = _socket;
        await DeviceThread.RunAllAsync(
            cancellationToken,
            token => DeviceThread.Run($"dgram-read {Name}", () => ReceiveLoop(socket, receiver, token)),
            token => DeviceThread.Run($"dgram-write {Name}", () => SendLoop(socket, token))).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    protected override ValueTask ReleaseDeviceAsync()
    {
        _socket?.Dispose();
        if (_local is UnixDomainSocketEndPoint unix)
        {
            try
            {
                File.Delete(unix.ToString()!);
            }
            catch (IOException)
            {
            }
        }

        return default;
    }

    private Socket Bind()
    {
        var socket = _isUnix
            ? new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified)
            : new Socket(_local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (_local is UnixDomainSocketEndPoint unix && Interop.Libc.IsSocket(unix.ToString()!) == true)
            {
                File.Delete(unix.ToString()!);
            }

            socket.Bind(_local);

            // Room for bursts from the guest while the receive loop is busy; the timeouts let the
            // blocking device threads notice cancellation.
            socket.ReceiveBufferSize = 4 << 20;
            socket.SendBufferSize = 4 << 20;
            socket.ReceiveTimeout = 200;
            socket.SendTimeout = 200;
            return socket;
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new WireSetupException(ex.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"cannot bind {Describe(_local)}: address already in use"
                : $"cannot bind {Describe(_local)}: {ex.Message}", ex);
        }
    }

    private void ReceiveLoop(Socket socket, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        // One byte more than the largest frame, so an oversized datagram shows as too long.
        var buffer = GC.AllocateUninitializedArray<byte>(FramePool.MaxFrameLength + 1);
        var expected = _remote.Serialize();
        var from = new SocketAddress(socket.AddressFamily);
        var fromCapacity = from.Size;
        while (!cancellationToken.IsCancellationRequested)
        {
            if (_isUnix && !receiver.CanRecvPacket)
            {
                // A unix datagram peer blocks in sendto while we do not read: backpressure, no loss.
                DeviceThread.Wait(receiver.WaitCanRecvPacketAsync(cancellationToken));
                continue;
            }

            int n;
            try
            {
                if (_isUnix)
                {
                    // Only QEMU can reach a unix path that NetWire created; no source check needed.
                    n = socket.Receive(buffer, SocketFlags.None);
                }
                else
                {
                    // ReceiveFrom shrinks Size to the address it got; give it the whole buffer again.
                    from.Size = fromCapacity;
                    n = socket.ReceiveFrom(buffer, SocketFlags.None, from);
                }
            }
            catch (SocketException ex) when (IoErrors.IsTransient(ex.SocketErrorCode))
            {
                continue;
            }
            catch (SocketException ex) when (IoErrors.IsPortUnreachable(ex.SocketErrorCode))
            {
                // ICMP port unreachable from an earlier send to QEMU before it started.
                continue;
            }
            catch (ObjectDisposedException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            if (!_isUnix && !from.Equals(expected))
            {
                Counters.Dropped(DropReason.ForeignSource);
                continue;
            }

            if (n < FramePool.MinFrameLength || n > FramePool.MaxFrameLength)
            {
                Counters.Dropped(DropReason.BadLength);
                continue;
            }

            if (!receiver.CanRecvPacket)
            {
                Counters.Dropped(DropReason.PeerFull);
                continue;
            }

            var frame = Pool.Rent(buffer.AsSpan(0, n));
            Counters.Received(n);
            receiver.RecvPacket(frame);
        }
    }

    private void SendLoop(Socket socket, CancellationToken cancellationToken)
    {
        var remote = _remote.Serialize();
        while (!cancellationToken.IsCancellationRequested)
        {
            if (!Outbound.TryRead(out var frame))
            {
                if (!DeviceThread.Wait(Outbound.WaitToReadAsync(cancellationToken)))
                {
                    return;
                }

                continue;
            }

            try
            {
                while (true)
                {
                    try
                    {
                        // Blocking sendto: a unix peer that is not reading makes this wait in the
                        // kernel (the timeout lets cancellation through) rather than spin.
                        socket.SendTo(frame.Span, SocketFlags.None, remote);
                        Counters.Transmitted(frame.Length);
                        break;
                    }
                    catch (SocketException ex) when (IoErrors.IsTransient(ex.SocketErrorCode))
                    {
                        if (cancellationToken.IsCancellationRequested)
                        {
                            Counters.Dropped(DropReason.Shutdown);
                            return;
                        }
                    }
                    catch (SocketException ex) when (_isUnix && ex.SocketErrorCode is SocketError.AddressNotAvailable or SocketError.ConnectionRefused)
                    {
                        // No QEMU at the remote path yet (ENOENT) or any more (ECONNREFUSED): like a
                        // stream guest that is not connected, hold the frame and let the queue fill.
                        if (cancellationToken.WaitHandle.WaitOne(PeerAbsentRetryMs))
                        {
                            Counters.Dropped(DropReason.Shutdown);
                            return;
                        }
                    }
                    catch (SocketException ex)
                    {
                        // A UDP peer that refused (ICMP unreachable) or a frame the kernel refused: lost, counted.
                        Counters.Dropped(DropReason.SendFailed);
                        DevicesLog.SendFailed(_logger, Name, ex.SocketErrorCode.ToString());
                        break;
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                Counters.Dropped(DropReason.Shutdown);
                return;
            }
            finally
            {
                frame.Dispose();
            }
        }
    }

    private static string Describe(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint u => $"unix:{u}",
        IPEndPoint ip => $"udp:{ip}",
        _ => endPoint.ToString() ?? "?",
    };
}
