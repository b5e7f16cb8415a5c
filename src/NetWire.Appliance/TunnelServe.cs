using System.Net;
using Microsoft.Extensions.Logging;
using NetWire.Spice;
using NetWire.Tunnel;

namespace NetWire.Appliance;

/// <summary>
/// <c>netwire serve --tunnel</c>: the SPICE tunnel channel (type 7), listed in CHANNELS_LIST and
/// bound to serve's user-mode gateway, whose guest network gets the tunnel's virtual IPs
/// (docs/tunnel.md).
/// </summary>
internal sealed class TunnelServe
{
    private WireComponent? _wire;

    private TunnelServe(TunnelGateway gateway) => Gateway = gateway;

    /// <summary>The virtual services bound to the gateway.</summary>
    public TunnelGateway Gateway { get; }

    /// <summary>Throws <see cref="FormatException"/> when --tunnel is asked for without the user-mode gateway.</summary>
    public static void Check(bool tunnel, WireSetup? setup)
    {
        if (tunnel && setup?.Gateway is null)
        {
            throw new FormatException("--tunnel needs the user-mode gateway (--host gateway and a --guest)");
        }
    }

    /// <summary>Adds the tunnel channel to the SPICE server and its virtual services to the gateway's options.</summary>
    public static TunnelServe Attach(ref WireSetup setup, SpiceServerOptions spice, ILoggerFactory loggers)
    {
        var network = setup.Gateway!;
        TunnelServe? serve = null;
        var gateway = new TunnelGateway(network, () => serve?.GuestAddress, new TunnelOptions());
        serve = new TunnelServe(gateway);
        setup = setup with { Gateway = network with { VirtualServices = gateway } };
        spice.Channels.Add(new TunnelChannelService(gateway, loggers));
        return serve;
    }

    /// <summary>Names the variable that shortens the tunnel's flush timeout, for tests (docs/migration.md, "Timeouts").</summary>
    public const string FlushTimeoutVariable = "NETWIRE_TUNNEL_FLUSH_TIMEOUT_MS";

    /// <summary>The state section that moves the tunnel's sockets with a migration (registered before <paramref name="flows"/>).</summary>
    /// <exception cref="FormatException"><see cref="FlushTimeoutVariable"/> is set and not a whole number of milliseconds from 1 to 60000.</exception>
    public NetWire.Core.State.IStateSection StateSection(NetWire.Stack.Migration.GatewayFlowSection flows, ILogger logger)
    {
        var section = new TunnelStateSection(Gateway, () => Volatile.Read(ref _wire)?.Gateway, flows, logger);
        if (Environment.GetEnvironmentVariable(FlushTimeoutVariable) is { Length: > 0 } text)
        {
            if (!int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms) || ms is < 1 or > 60_000)
            {
                throw new FormatException($"{FlushTimeoutVariable}={text}: expected milliseconds from 1 to 60000");
            }

            section.FlushTimeout = TimeSpan.FromMilliseconds(ms);
        }

        return section;
    }

    /// <summary>The wire whose gateway holds the guest's address (virtual IPs skip it).</summary>
    public void Bind(WireComponent? wire) => Volatile.Write(ref _wire, wire);

    private IPAddress? GuestAddress => Volatile.Read(ref _wire)?.Gateway?.GuestIp;
}
