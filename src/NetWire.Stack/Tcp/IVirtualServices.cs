using System.Net.Sockets;

namespace NetWire.Stack.Tcp;

/// <summary>
/// Addresses in the guest network that stand for services somewhere else (the SPICE tunnel's
/// virtual IPs). The gateway answers ARP for them, and a guest TCP connection to one is
/// terminated by the gateway's TCP endpoint like any other, with its far side given by
/// <see cref="ConnectAsync"/> instead of a host connect.
/// </summary>
/// <remarks>
/// The gateway calls both members under its lock: they must not block. Addresses are
/// host-order values (10.0.2.31 is 0x0A00021F), as everywhere in the stack.
/// </remarks>
public interface IVirtualServices
{
    /// <summary>True when <paramref name="address"/> is a virtual address now (ARP answered, SYNs taken).</summary>
    bool IsVirtualAddress(uint address);

    /// <summary>
    /// Opens the far side of a guest connection to <paramref name="address"/>:<paramref name="port"/>.
    /// The task gives a connected stream socket whose bytes are the service's; it faults with a
    /// <see cref="SocketException"/> (connection refused) when there is no such service or the
    /// service refused, and the guest then gets a RST. Completes without the gateway's lock held.
    /// </summary>
    Task<Socket> ConnectAsync(uint guestIp, ushort guestPort, uint address, ushort port, CancellationToken cancellationToken);
}
