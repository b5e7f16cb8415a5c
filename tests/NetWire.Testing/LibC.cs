using System.Runtime.InteropServices;

namespace NetWire.Testing;

/// <summary>
/// The few libc calls the harness needs: <see cref="System.Diagnostics.Process"/> can only
/// send SIGKILL, and a graceful stop (SIGTERM) lets QEMU and tools flush and clean up.
/// </summary>
internal static class LibC
{
    public const int SigTerm = 15;
    public const int SigKill = 9;

    [DllImport("libc", SetLastError = true)]
    public static extern int kill(int pid, int sig);

    [DllImport("libc")]
    public static extern uint geteuid();
}
