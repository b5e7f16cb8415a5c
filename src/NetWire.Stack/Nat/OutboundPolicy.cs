using NetWire.Core.Net;

namespace NetWire.Stack.Nat;

/// <summary>
/// Which destinations the guest may reach. A destination is refused when it matches a
/// <c>--deny</c> network, or when <c>--allow</c> networks were given and it matches none of
/// them. The host's own loopback is separate: reachable only through the gateway address and
/// only with <c>--allow-host-loopback</c> (as slirp and passt do; a guest must not reach
/// services that trust 127.0.0.1 unless the user says so). Networks of either family may be
/// given; each matches only addresses of its own family, so <c>--allow 10.0.0.0/8</c> alone
/// refuses every IPv6 destination, and <c>--deny ::/0</c> every IPv6 one and no IPv4 one.
/// </summary>
public sealed record OutboundPolicy(IReadOnlyList<IpNetwork> Allow, IReadOnlyList<IpNetwork> Deny)
{
    /// <summary>True when the guest may reach <paramref name="hostAddress"/> (after mapping).</summary>
    public bool Permits(IpAddr hostAddress)
    {
        foreach (var deny in Deny)
        {
            if (deny.Contains(hostAddress))
            {
                return false;
            }
        }

        if (Allow.Count == 0)
        {
            return true;
        }

        foreach (var allow in Allow)
        {
            if (allow.Contains(hostAddress))
            {
                return true;
            }
        }

        return false;
    }
}
