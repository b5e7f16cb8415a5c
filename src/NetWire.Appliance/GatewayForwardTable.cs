using System.Net;
using NetWire.Control;
using NetWire.Core.Wire;
using NetWire.Stack;
using NetWire.Stack.Nat;

namespace NetWire.Appliance;

/// <summary>The gateway's host forwards as the control socket's <see cref="IHostForwardTable"/>.</summary>
internal sealed class GatewayForwardTable(GatewayEnd gateway) : IHostForwardTable
{
    public int Add(string protocol, IPEndPoint listen, int guestPort)
    {
        try
        {
            return gateway.AddForward(new HostForward(protocol == "udp" ? Transport.Udp : Transport.Tcp, listen, checked((ushort)guestPort)));
        }
        catch (WireSetupException ex)
        {
            throw new InvalidOperationException(ex.Message, ex);
        }
    }

    public bool Remove(int id) => gateway.RemoveForward(id);

    public IReadOnlyList<HostForwardInfo> List() =>
        [.. gateway.Forwards.Select(f => new HostForwardInfo(f.Id, f.Forward.Transport == Transport.Udp ? "udp" : "tcp", f.Forward.Listen, f.Forward.GuestPort))];
}
