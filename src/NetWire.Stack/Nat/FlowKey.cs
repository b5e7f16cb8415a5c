using NetWire.Core.Net;

namespace NetWire.Stack.Nat;

/// <summary>
/// A flow as the guest sees it: its address and port, and the address and port it talks to.
/// One type for the TCP and UDP tables and relayed pings (where the guest port is the echo
/// identifier and the remote port 0). Addresses are <see cref="IpAddr"/> values, so an IPv6 flow
/// fits the same key; hashing and equality allocate nothing.
/// </summary>
internal readonly record struct FlowKey(IpAddr GuestIp, ushort GuestPort, IpAddr RemoteIp, ushort RemotePort);
