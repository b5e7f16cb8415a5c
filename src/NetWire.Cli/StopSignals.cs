using System.Runtime.InteropServices;

namespace NetWire.Cli;

/// <summary>SIGTERM and SIGINT cancel a long-running verb instead of killing the process, so it can clean up and report.</summary>
internal sealed class StopSignals : IDisposable
{
    private readonly PosixSignalRegistration _term;
    private readonly PosixSignalRegistration _interrupt;

    private StopSignals(CancellationTokenSource stop)
    {
        _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => Cancel(context, stop));
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => Cancel(context, stop));
    }

    /// <summary>Cancels <paramref name="stop"/> on SIGTERM or SIGINT until disposed.</summary>
    public static StopSignals CancelOnTermination(CancellationTokenSource stop) => new(stop);

    public void Dispose()
    {
        _term.Dispose();
        _interrupt.Dispose();
    }

    private static void Cancel(PosixSignalContext context, CancellationTokenSource stop)
    {
        context.Cancel = true;
        stop.Cancel();
    }
}
