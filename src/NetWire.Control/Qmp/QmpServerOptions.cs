namespace NetWire.Control.Qmp;

/// <summary>Limits of the control socket; documented in docs/control.md.</summary>
internal sealed class QmpServerOptions
{
    /// <summary>Clients at once; one more gets an error line and is closed.</summary>
    public int MaxClients { get; init; } = 8;

    /// <summary>Longest input line (one command) in bytes; a longer one is answered with an error and skipped.</summary>
    public int MaxLineBytes { get; init; } = 64 * 1024;

    /// <summary>Replies and events queued for one client; a client that lets events pile up this far is dropped.</summary>
    public int SendQueueCapacity { get; init; } = 256;

    /// <summary>Event timestamps.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}
