using SharpFuzz;

namespace NetWire.Fuzz;

/// <summary>
/// <code>
///   NetWire.Fuzz TARGET                    under afl-fuzz (tools/fuzz/run.sh): SharpFuzz's loop
///   NetWire.Fuzz TARGET --run PATH...      each file (folders: every file in them) through TARGET
///                                          once; exit 1 when any escapes with an exception
///   NetWire.Fuzz --seeds DIR CAPTURES      writes the starting corpora into DIR/TARGET/
/// </code>
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["--seeds", var dir, var captures])
        {
            Seeds.Write(dir, captures);
            return 0;
        }

        if (args.Length == 0 || !Targets.All.TryGetValue(args[0], out var target))
        {
            Console.Error.WriteLine($"usage: NetWire.Fuzz TARGET [--run PATH...] | --seeds DIR CAPTURES; targets: {string.Join(", ", Targets.All.Keys)}");
            return 2;
        }

        if (args.Length > 1 && args[1] == "--run")
        {
            return RunFiles(args[0], target, args[2..]);
        }

        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            target(copy.ToArray());
        });
        return 0;
    }

    private static int RunFiles(string name, Action<byte[]> target, string[] paths)
    {
        var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p, "*", SearchOption.AllDirectories) : File.Exists(p) ? [p] : [])
            .Where(f => !Path.GetFileName(f).StartsWith('.') && !f.EndsWith("README.txt", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        var failed = 0;
        foreach (var file in files)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                target(File.ReadAllBytes(file));
            }
            catch (Exception ex)
            {
                failed++;
                Console.Error.WriteLine($"{name}: {file}: {ex.GetType().Name}: {ex.Message}");
                Console.Error.WriteLine(ex.StackTrace);
            }

            if (watch.Elapsed > TimeSpan.FromSeconds(5))
            {
                failed++;
                Console.Error.WriteLine($"{name}: {file}: took {watch.Elapsed.TotalSeconds:0.0} s (a hang)");
            }
        }

        Console.WriteLine($"{name}: {files.Count} inputs, {failed} failed");
        return failed == 0 ? 0 : 1;
    }
}
