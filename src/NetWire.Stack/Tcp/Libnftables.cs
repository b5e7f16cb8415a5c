using System.Runtime.InteropServices;

namespace NetWire.Stack.Tcp;

/// <summary>
/// A libnftables context: nftables commands (the <c>nft</c> command's syntax) run in this process,
/// each buffer as one netlink transaction, for the <see cref="NetworkLock"/>. Not thread-safe: the
/// lock uses it under its own gate. See libnftables(3).
/// </summary>
internal sealed partial class Libnftables : IDisposable
{
    private const string Library = "libnftables.so.1";

    /// <summary>The struct nft_ctx; 0 once disposed.</summary>
    private nint _context;

    private Libnftables(nint context) => _context = context;

    /// <summary>A new context with buffered output and errors, or null when the library is not installed.</summary>
    public static Libnftables? TryCreate()
    {
        nint context;
        try
        {
            context = CtxNew(0);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return null;
        }

        if (context == 0)
        {
            return null;
        }

        // Otherwise errors and any output go to this process's stderr and stdout.
        if (CtxBufferOutput(context) != 0 || CtxBufferError(context) != 0)
        {
            CtxFree(context);
            return null;
        }

        return new Libnftables(context);
    }

    /// <summary>Runs <paramref name="commands"/> (one or more lines) as one transaction.</summary>
    /// <exception cref="NetworkLockException">nftables refused them (syntax, no CAP_NET_ADMIN); nothing of the batch was done.</exception>
    public void Run(string commands)
    {
        ObjectDisposedException.ThrowIf(_context == 0, this);
        var failed = RunCmdFromBuffer(_context, commands) != 0;

        // Reading a buffer empties it, so the next batch starts clean.
        var error = Marshal.PtrToStringUTF8(CtxGetErrorBuffer(_context));
        _ = CtxGetOutputBuffer(_context);
        if (failed)
        {
            throw new NetworkLockException($"nft: {Describe(error)}");
        }
    }

    public void Dispose()
    {
        if (_context != 0)
        {
            CtxFree(_context);
            _context = 0;
        }
    }

    /// <summary>The error lines of libnftables' message (it also echoes the command with carets under the fault).</summary>
    private static string Describe(string? error)
    {
        if (string.IsNullOrWhiteSpace(error))
        {
            return "refused the command";
        }

        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var errors = Array.FindAll(lines, l => l.Contains("Error:", StringComparison.Ordinal));
        return string.Join(' ', errors.Length > 0 ? errors : lines);
    }

    [LibraryImport(Library, EntryPoint = "nft_ctx_new")]
    private static partial nint CtxNew(uint flags);

    [LibraryImport(Library, EntryPoint = "nft_ctx_free")]
    private static partial void CtxFree(nint context);

    [LibraryImport(Library, EntryPoint = "nft_ctx_buffer_output")]
    private static partial int CtxBufferOutput(nint context);

    [LibraryImport(Library, EntryPoint = "nft_ctx_buffer_error")]
    private static partial int CtxBufferError(nint context);

    [LibraryImport(Library, EntryPoint = "nft_ctx_get_output_buffer")]
    private static partial nint CtxGetOutputBuffer(nint context);

    [LibraryImport(Library, EntryPoint = "nft_ctx_get_error_buffer")]
    private static partial nint CtxGetErrorBuffer(nint context);

    [LibraryImport(Library, EntryPoint = "nft_run_cmd_from_buffer", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RunCmdFromBuffer(nint context, string commands);
}
