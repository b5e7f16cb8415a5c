using System.Net;

namespace NetWire.Control;

/// <summary>One open host forward as the control socket reports it.</summary>
/// <param name="Id">The forward's id (what <c>hostfwd-remove</c> takes).</param>
/// <param name="Protocol"><c>tcp</c> or <c>udp</c>.</param>
/// <param name="Listen">The host address and port it listens on.</param>
/// <param name="GuestPort">The guest port it reaches.</param>
public sealed record HostForwardInfo(int Id, string Protocol, IPEndPoint Listen, int GuestPort);

/// <summary>
/// The user-mode gateway's host forwards, for the QMP <c>hostfwd-*</c> commands. The appliance
/// implements it over its gateway (Control does not reference the stack: docs/architecture.md).
/// </summary>
public interface IHostForwardTable
{
    /// <summary>Opens a forward and returns its id; throws <see cref="InvalidOperationException"/> with the reason when it cannot.</summary>
    int Add(string protocol, IPEndPoint listen, int guestPort);

    /// <summary>Closes a forward; false when there is no forward <paramref name="id"/>.</summary>
    bool Remove(int id);

    /// <summary>The open forwards in id order.</summary>
    IReadOnlyList<HostForwardInfo> List();
}
