using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>Reads captures back with the real tshark.</summary>
internal static class Tshark
{
    /// <summary>One line per frame: the given fields, tab separated.</summary>
    public static Task<string[]> FieldsAsync(string file, string? filter, params string[] fields) =>
        FieldsAsync(file, filter, [], fields);

    /// <summary>As above, with extra tshark options (such as <c>-d</c> decode-as rules).</summary>
    public static async Task<string[]> FieldsAsync(string file, string? filter, string[] options, params string[] fields)
    {
        HostRequirements.RequireCommand("tshark");
        var args = new List<string> { "-r", file, "-T", "fields" };
        args.AddRange(options);
        if (filter is not null)
        {
            args.AddRange(["-Y", filter]);
        }

        foreach (var field in fields)
        {
            args.AddRange(["-e", field]);
        }

        var result = await ProcessRunner.RunAsync("tshark", args, TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, $"tshark failed: {result.Stderr}");
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
