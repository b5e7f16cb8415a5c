using System.Diagnostics.CodeAnalysis;
using Xunit.v3;

namespace NetWire.Testing;

/// <summary>
/// Guards for tests that need the real host: root, tools on PATH, the guest image.
/// On a developer machine a missing requirement skips the test; in CI (<c>CI=true</c>)
/// it fails the test, because a host test that silently skips in CI proves nothing.
/// </summary>
public static class HostRequirements
{
    /// <summary>True when the environment variable CI is <c>true</c> (or <c>1</c>), as CI services set it.</summary>
    public static bool IsCI =>
        Environment.GetEnvironmentVariable("CI") is { } ci
        && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    /// <summary>Requires an effective user id of 0 (netns, TAP and raw captures need it).</summary>
    public static void RequireRoot()
    {
        if (LibC.geteuid() != 0)
        {
            Unmet("needs root (network namespaces, TAP devices and captures)");
        }
    }

    /// <summary>Requires an executable <paramref name="name"/> on PATH and returns its full path.</summary>
    public static string RequireCommand(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        var found = FindOnPath(name);
        if (found is null)
        {
            Unmet($"needs the command '{name}' on PATH");
        }

        return found;
    }

    /// <summary>Requires the guest kernel and initramfs built by <c>tools/guest/build-image.sh</c>.</summary>
    public static void RequireGuestImage()
    {
        foreach (var file in new[] { RepoPaths.GuestKernel, RepoPaths.GuestInitramfs })
        {
            if (!File.Exists(file))
            {
                Unmet($"needs the guest image: {file} is missing; run tools/guest/build-image.sh (or set NETWIRE_GUEST_DIR)");
            }
        }
    }

    /// <summary>Requires that <paramref name="path"/> exists; <paramref name="hint"/> says how to make it.</summary>
    public static void RequireFile(string path, string hint)
    {
        if (!File.Exists(path))
        {
            Unmet($"needs {path}: {hint}");
        }
    }

    /// <summary>Skips the current test, or fails it in CI, with <paramref name="reason"/>.</summary>
    [DoesNotReturn]
    public static void Unmet(string reason)
    {
        if (IsCI)
        {
            throw new HostRequirementException($"Host requirement not met in CI (CI=true, so this is a failure, not a skip): {reason}");
        }

        // This is what Assert.Skip does: xunit v3 reports any exception whose message starts
        // with the dynamic skip token as a skip. The token lives in xunit.v3.core, which this
        // library already references, so it needs no assertion package.
        throw new HostRequirementException(DynamicSkipToken.Value + reason);
    }

    private static string? FindOnPath(string name)
    {
        if (name.Contains('/', StringComparison.Ordinal))
        {
            return IsExecutable(name) ? Path.GetFullPath(name) : null;
        }

        var path = Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsExecutable(string file) =>
        File.Exists(file)
        && OperatingSystem.IsLinux()
        && (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}
