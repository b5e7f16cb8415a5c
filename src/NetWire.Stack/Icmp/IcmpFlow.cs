using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using NetWire.Stack.Ipv4;

namespace NetWire.Stack.Icmp;

/// <summary>
/// One relayed ping conversation: the guest's echo identifier towards one destination, over an
/// unprivileged ICMP socket (SOCK_DGRAM, IPPROTO_ICMP) connected to the destination. The kernel
/// gives the socket its own identifier and fills in the checksum; replies get the guest's
/// identifier back and come from the address the guest pinged.
/// </summary>
internal sealed class IcmpFlow(Gateway gateway, IcmpFlowKey key, Socket socket)
{
    private const int MaxMessage = 65_507;
    private int _closed;

    /// <summary>Last echo either way, in gateway milliseconds; written under the gateway lock.</summary>
    public long LastUsedMs { get; private set; } = gateway.NowMs;

    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    /// <summary>
    /// Opens the socket. Fails with the socket error when the host does not allow unprivileged
    /// ICMP sockets to this process's groups (net.ipv4.ping_group_range) or has no ICMP.
    /// </summary>
    public static bool TryOpen(IPAddress destination, out Socket socket, out SocketError error)
    {
        socket = null!;
        try
        {
            socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Icmp);
        }
        catch (SocketException ex)
        {
            error = ex.SocketErrorCode;
            return false;
        }

        try
        {
            socket.Blocking = false;
            socket.Connect(new IPEndPoint(destination, 0));
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            error = ex.SocketErrorCode;
            return false;
        }

        error = SocketError.Success;
        return true;
    }

    public void Start() => _ = ReceiveLoopAsync();

    /// <summary>Sends the guest's echo request (header and data, as the guest sent them). Caller holds the gateway lock.</summary>
    public void Send(ReadOnlySpan<byte> echo, long nowMs)
    {
        LastUsedMs = nowMs;
        if (IsClosed)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
            return;
        }

        socket.Send(echo, SocketFlags.None, out var error);
        if (error != SocketError.Success)
        {
            gateway.Counters.Drop(StackDrop.HostSendFailed);
        }
    }

    public void Close()
    {
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            socket.Dispose();
        }
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxMessage);
        try
        {
            var cancellationToken = gateway.Stopping;
            while (!IsClosed)
            {
                int received;
                try
                {
                    received = await socket.ReceiveAsync(buffer.AsMemory(0, MaxMessage), SocketFlags.None, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable)
                {
                    // An ICMP error about an earlier echo: the guest's ping times out, as it would.
                    continue;
                }

                if (!gateway.CanEmit)
                {
                    await gateway.WaitCanEmitAsync(cancellationToken).ConfigureAwait(false);
                }

                lock (gateway.Sync)
                {
                    if (IsClosed)
                    {
                        return;
                    }

                    LastUsedMs = gateway.NowMs;
                    Deliver(buffer.AsSpan(0, received));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (SocketException)
        {
            Close();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Deliver(ReadOnlySpan<byte> reply)
    {
        // The kernel passes only echo replies to a ping socket, but check what is relayed.
        if (reply.Length < 8 || reply[0] != 0 || reply.Length + Gateway.Ipv4HeaderLength > gateway.Options.Mtu)
        {
            gateway.Counters.Drop(reply.Length < 8 || reply[0] == 0 ? StackDrop.BadLength : StackDrop.Ignored);
            return;
        }

        var frame = gateway.RentIpv4(reply.Length);
        var icmp = frame.Span[(Gateway.EthernetHeader + Gateway.Ipv4HeaderLength)..];
        reply.CopyTo(icmp);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], key.Identifier);
        icmp[2] = 0;
        icmp[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
        gateway.EmitIpv4(frame, Gateway.ProtocolIcmp, key.RemoteIp, key.GuestIp);
    }
}

/// <summary>A relayed ping conversation: the guest, its echo identifier, and the address it pings.</summary>
internal readonly record struct IcmpFlowKey(uint GuestIp, ushort Identifier, uint RemoteIp);
