using Microsoft.Extensions.Logging;
using NetWire.Spice;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;

namespace NetWire.Tunnel;

/// <summary>
/// The tunnel channel (type 7, id 0) as the SPICE server serves it: listed in CHANNELS_LIST,
/// each link runs a <see cref="TunnelSession"/> bound to one gateway's <see cref="TunnelGateway"/>.
/// </summary>
internal sealed class TunnelChannelService(TunnelGateway gateway, ILoggerFactory loggers) : ISpiceChannelService
{
    private long _links;

    public SpiceChannelType Type => SpiceChannelType.Tunnel;

    public byte Id => 0;

    /// <summary>The migration cap (<see cref="TunnelMessages.CapMigrate"/>), NetWire's own: the original defined none.</summary>
    public uint[] ChannelCaps => [1u << TunnelMessages.CapMigrate];

    public TunnelGateway Gateway => gateway;

    public Task RunAsync(Stream stream, SpiceLinkMess link, SpiceSession session, CancellationToken cancellationToken)
    {
        var client = new TunnelSession(
            Interlocked.Increment(ref _links),
            session,
            stream,
            link.HasCommonCap(SpiceCaps.MiniHeader),
            link.HasChannelCap(TunnelMessages.CapMigrate),
            gateway,
            loggers.CreateLogger<TunnelSession>());
        return client.RunAsync(cancellationToken);
    }
}
