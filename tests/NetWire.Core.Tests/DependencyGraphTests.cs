using System.Xml.Linq;
using NetWire.Testing;

namespace NetWire.Core.Tests;

/// <summary>
/// The projects under src/ form a star around NetWire.Core (docs/architecture.md, "Projects"):
/// Devices, Stack and Spice use only Core, Control also Spice, Tunnel Spice and Stack, and
/// Appliance and Cli use them all. Read from the project files, so a new reference fails here
/// until the graph (and the document) says where it belongs.
/// </summary>
public sealed class DependencyGraphTests
{
    private static readonly Dictionary<string, string[]> s_expected = new()
    {
        ["NetWire.Core"] = [],
        ["NetWire.Devices"] = ["NetWire.Core"],
        ["NetWire.Stack"] = ["NetWire.Core"],
        ["NetWire.Spice"] = ["NetWire.Core"],
        ["NetWire.Control"] = ["NetWire.Core", "NetWire.Spice"],
        ["NetWire.Tunnel"] = ["NetWire.Core", "NetWire.Spice", "NetWire.Stack"],
        ["NetWire.Appliance"] = ["NetWire.Control", "NetWire.Core", "NetWire.Devices", "NetWire.Spice", "NetWire.Stack", "NetWire.Tunnel"],
        ["NetWire.Cli"] = ["NetWire.Appliance", "NetWire.Control", "NetWire.Core", "NetWire.Devices", "NetWire.Spice", "NetWire.Stack", "NetWire.Tunnel"],
    };

    [Fact]
    public void SourceProjects_AreTheKnownOnes()
    {
        var found = Projects("src").Keys.Order(StringComparer.Ordinal);
        Assert.Equal(s_expected.Keys.Order(StringComparer.Ordinal), found);
    }

    [Fact]
    public void SourceProjects_ReferenceOnlyTheirPlaceInTheStar()
    {
        var wrong = new List<string>();
        foreach (var (project, references) in Projects("src"))
        {
            var expected = s_expected.GetValueOrDefault(project, []);
            wrong.AddRange(references.Except(expected).Select(r => $"{project} references {r}"));
            wrong.AddRange(expected.Except(references).Select(r => $"{project} does not reference {r}"));
        }

        Assert.True(wrong.Count == 0, string.Join("; ", wrong));
    }

    [Fact]
    public void Core_NeedsOnlyTheLoggingAbstractions()
    {
        var packages = Document("src", "NetWire.Core").Descendants("PackageReference").Select(p => (string?)p.Attribute("Include") ?? string.Empty).ToArray();
        Assert.Equal(["Microsoft.Extensions.Logging.Abstractions"], packages);
    }

    [Fact]
    public void TheExecutable_IsReferencedOnlyByItsOwnTests()
    {
        var referrers = Projects("tests").Where(p => p.Value.Contains("NetWire.Cli")).Select(p => p.Key).ToArray();
        Assert.Equal(["NetWire.Cli.Tests"], referrers);
    }

    /// <summary>Every project under <paramref name="folder"/> (one per subfolder) with the names of the projects it references.</summary>
    private static Dictionary<string, string[]> Projects(string folder)
    {
        var projects = new Dictionary<string, string[]>();
        foreach (var directory in Directory.EnumerateDirectories(Path.Combine(RepoPaths.Root, folder)))
        {
            var name = Path.GetFileName(directory);
            if (!File.Exists(Path.Combine(directory, name + ".csproj")))
            {
                continue;
            }

            projects[name] = [.. Document(folder, name).Descendants("ProjectReference")
                .Select(r => Path.GetFileNameWithoutExtension(((string?)r.Attribute("Include") ?? string.Empty).Replace('\\', '/')))
                .Order(StringComparer.Ordinal)];
        }

        return projects;
    }

    private static XDocument Document(string folder, string name) =>
        XDocument.Load(Path.Combine(RepoPaths.Root, folder, name, name + ".csproj"));
}
