namespace NetWire.Appliance;

/// <summary>
/// One part of <see cref="ServeAppliance"/>: the wire, the SPICE server, the incoming migration
/// or the control socket. Started in order, stopped in reverse order.
/// </summary>
internal interface IServeComponent : IAsyncDisposable
{
    /// <summary>For messages: "SPICE server".</summary>
    string Name { get; }

    /// <summary>Opens what the component listens on; throws on a setup failure (busy port).</summary>
    Task StartAsync(CancellationToken cancellationToken);

    /// <summary>Completes when the component stops on its own (a failure); never for a healthy one.</summary>
    Task Completion { get; }

    /// <summary>Stops it cleanly (clients are told).</summary>
    Task StopAsync();
}
