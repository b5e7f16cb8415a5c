using Microsoft.Win32.SafeHandles;

namespace NetWire.Stack.Tftp;

/// <summary>TFTP error codes (RFC 1350 5, RFC 2347 for 8).</summary>
internal enum TftpErrorCode : ushort
{
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    IllegalOperation = 4,
    UnknownTransferId = 5,
    OptionRefused = 8,
}

/// <summary>
/// The folder <c>--tftp DIR</c> serves, and the one rule about it: a name never reaches a file
/// outside it. Names are relative (no leading '/'), have no <c>..</c> component, and the file
/// actually opened (after every symbolic link, read back from <c>/proc/self/fd</c>) must lie below
/// the folder's own real path, so a link inside the folder pointing out of it is refused too.
/// </summary>
internal sealed class TftpDirectory
{
    /// <summary>Longest file name taken (RFC 1350 sets none; requests are at most 512 bytes).</summary>
    public const int MaxNameBytes = 255;

    private const int MaxLinks = 40;

    /// <summary>Resolves <paramref name="path"/> once, so later checks compare real paths.</summary>
    public TftpDirectory(string path)
    {
        Root = RealPath(Path.GetFullPath(path));
    }

    /// <summary>The folder's real path (no symbolic links, no trailing '/').</summary>
    public string Root { get; }

    /// <summary>
    /// Opens <paramref name="name"/> for reading. Returns null with the handle and length, or the
    /// error to send: <see cref="TftpErrorCode.AccessViolation"/> for an absolute name, a <c>..</c>
    /// component, anything that resolves outside the folder, a folder or an unreadable file;
    /// <see cref="TftpErrorCode.FileNotFound"/> when nothing is there.
    /// </summary>
    public TftpErrorCode? TryOpen(string name, out SafeFileHandle? handle, out long length)
    {
        handle = null;
        length = 0;
        if (name.Length is 0 or > MaxNameBytes || name[0] == '/')
        {
            return TftpErrorCode.AccessViolation;
        }

        foreach (var part in name.Split('/'))
        {
            if (part == "..")
            {
                return TftpErrorCode.AccessViolation;
            }
        }

        SafeFileHandle opened;
        try
        {
            opened = File.OpenHandle(Path.Join(Root, name), FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return TftpErrorCode.FileNotFound;
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            return TftpErrorCode.AccessViolation;
        }

        // What was opened, after every link: /proc/self/fd/N names it.
        var actual = new FileInfo($"/proc/self/fd/{opened.DangerousGetHandle()}").LinkTarget;
        if (actual is null || !actual.StartsWith(Root + "/", StringComparison.Ordinal))
        {
            opened.Dispose();
            return TftpErrorCode.AccessViolation;
        }

        try
        {
            length = RandomAccess.GetLength(opened);
        }
        catch (IOException)
        {
            opened.Dispose();
            return TftpErrorCode.AccessViolation;
        }

        handle = opened;
        return null;
    }

    /// <summary>An absolute path with every symbolic link resolved, component by component.</summary>
    private static string RealPath(string path)
    {
        var pending = new Stack<string>(path.Split('/').Reverse());
        var current = "/";
        var links = 0;
        while (pending.TryPop(out var part))
        {
            if (part is "" or ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? "/";
                continue;
            }

            var next = Path.Join(current, part);
            if (new FileInfo(next).LinkTarget is { } target)
            {
                if (++links > MaxLinks)
                {
                    throw new FormatException($"--tftp '{path}': too many symbolic links");
                }

                foreach (var piece in target.Split('/').Reverse())
                {
                    pending.Push(piece);
                }

                if (target.StartsWith('/'))
                {
                    current = "/";
                }

                continue;
            }

            current = next;
        }

        return current;
    }
}
