using System.Reflection;

namespace NetWire.Testing;

/// <summary>
/// Well-known locations in the NetWire repository, found from the running test assembly.
/// </summary>
public static class RepoPaths
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>The repository root: the nearest folder above the test binaries that holds NetWire.sln.</summary>
    public static string Root => s_root.Value;

    /// <summary>
    /// The folder with the guest image (vmlinuz, initramfs.cpio.gz): <c>NETWIRE_GUEST_DIR</c> when set,
    /// else <c>Root/.build/guest</c>, which <c>tools/guest/build-image.sh</c> fills.
    /// </summary>
    public static string GuestDir
    {
        get
        {
            var fromEnv = Environment.GetEnvironmentVariable("NETWIRE_GUEST_DIR");
            return string.IsNullOrWhiteSpace(fromEnv) ? Path.Combine(Root, ".build", "guest") : Path.GetFullPath(fromEnv);
        }
    }

    /// <summary>The guest kernel, <c>GuestDir/vmlinuz</c>.</summary>
    public static string GuestKernel => Path.Combine(GuestDir, "vmlinuz");

    /// <summary>The guest base initramfs, <c>GuestDir/initramfs.cpio.gz</c>.</summary>
    public static string GuestInitramfs => Path.Combine(GuestDir, "initramfs.cpio.gz");

    /// <summary>
    /// The built CLI, <c>Root/src/NetWire.Cli/bin/CONFIG/net10.0/netwire.dll</c>. CONFIG is the
    /// configuration these tests were built with when that build exists, else any configuration
    /// that has a netwire.dll (newest first). When none exists the path for the tests'
    /// configuration is returned, so that error messages name the file to build.
    /// </summary>
    public static string NetwireDll
    {
        get
        {
            var binDir = Path.Combine(Root, "src", "NetWire.Cli", "bin");
            var preferred = Path.Combine(binDir, BuildConfiguration, "net10.0", "netwire.dll");
            if (File.Exists(preferred))
            {
                return preferred;
            }

            if (Directory.Exists(binDir))
            {
                var other = Directory.EnumerateDirectories(binDir)
                    .Select(dir => Path.Combine(dir, "net10.0", "netwire.dll"))
                    .Where(File.Exists)
                    .OrderByDescending(File.GetLastWriteTimeUtc)
                    .FirstOrDefault();
                if (other is not null)
                {
                    return other;
                }
            }

            return preferred;
        }
    }

    /// <summary>The configuration (Debug, Release) this assembly, and so the tests, were built with.</summary>
    public static string BuildConfiguration =>
        typeof(RepoPaths).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration is { Length: > 0 } config
            ? config
            : "Debug";

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "NetWire.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"No folder above {AppContext.BaseDirectory} contains NetWire.sln; run the tests from the repository's build output.");
    }
}
