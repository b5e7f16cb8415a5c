using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using NetWire.Core.Frames;
using NetWire.Core.Wire;

namespace NetWire.Devices.Qemu;

/// <summary>
/// A guest end on QEMU's datagram backends (<c>-netdev dgram</c>, <c>-netdev socket,udp=</c>):
/// one datagram is one Ethernet frame, no header.
/// </summary>
/// <remarks>
/// How this works: NetWire binds its local address and sends to QEMU's. Datagrams from any
/// other address are dropped (ForeignSource): a UDP port is open to every local process.
/// A unix datagram socket can be paused (the kernel blocks QEMU's sendto and QEMU stops the
/// guest's queue), so with unix the receive loop waits for the receiver. A UDP socket cannot
/// be paused without the kernel dropping silently, so with UDP NetWire keeps reading and counts
/// a PeerFull drop when the receiver is full. Frames to QEMU go out with one sendto each.
/// </remarks>
public sealed class QemuDgramEnd : WireEnd
{
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
        await Task.WhenAll(ReceiveLoopAsync(_socket, receiver, cancellationToken), SendLoopAsync(_socket, cancellationToken)).ConfigureAwait(false);
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

            // Room for bursts from the guest while the receive loop is busy.
            socket.ReceiveBufferSize = 4 << 20;
            socket.SendBufferSize = 4 << 20;
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

    private async Task ReceiveLoopAsync(Socket socket, IPacketReceiver receiver, CancellationToken cancellationToken)
    {
        // One byte more than the largest frame, so an oversized datagram shows as too long.
        var buffer = GC.AllocateUninitializedArray<byte>(FramePool.MaxFrameLength + 1, pinned: true);
        var expected = _remote.Serialize();
        var from = new SocketAddress(socket.AddressFamily);
        while (!cancellationToken.IsCancellationRequested)
        {
            if (_isUnix && !receiver.CanRecvPacket)
            {
                await receiver.WaitCanRecvPacketAsync(cancellationToken).ConfigureAwait(false);
            }

            int n;
            try
            {
                n = await socket.ReceiveFromAsync(buffer, SocketFlags.None, from, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionRefused)
            {
                continue;
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

    private async Task SendLoopAsync(Socket socket, CancellationToken cancellationToken)
    {
        var remote = _remote.Serialize();
        while (await Outbound.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
        {
            while (Outbound.TryRead(out var frame))
            {
                try
                {
                    await socket.SendToAsync(frame.Memory, SocketFlags.None, remote, cancellationToken).ConfigureAwait(false);
                    Counters.Transmitted(frame.Length);
                }
                catch (SocketException ex)
                {
                    // QEMU not started yet (unix: no such file), or gone (refused): the frame is lost, counted.
                    Counters.Dropped(DropReason.SendFailed);
                    DevicesLog.SendFailed(_logger, Name, ex.SocketErrorCode.ToString());
                }
                finally
                {
                    frame.Dispose();
                }
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
