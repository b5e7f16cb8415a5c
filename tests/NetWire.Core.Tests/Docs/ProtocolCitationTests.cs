using System.Text.RegularExpressions;
using NetWire.Testing;

namespace NetWire.Core.Tests.Docs;

/// <summary>
/// Code and docs cite docs/protocol.md by section (<c>protocol.md §6.7</c>). Every section sign
/// with a number in src/, tests/, tools/, docs/ and README.md is such a citation and must name
/// a heading of docs/protocol.md; RFC sections are written without it (<c>RFC 9293 3.10.7.4</c>).
/// Citations of the notes that came before protocol.md ("brief N.M") must not come back.
/// </summary>
public sealed partial class ProtocolCitationTests
{
    private const string ProtocolDoc = "docs/protocol.md";

    /// <summary>The section sign, spelled as an escape so that this file cites nothing itself.</summary>
    private const string Sign = "\u00a7";

    /// <summary>The old notes' name, split so that the scan does not find this file.</summary>
    private const string Old = "bri" + "ef";

    [Fact]
    public void EveryCitedSection_IsAHeadingOfProtocolMd()
    {
        var sections = ProtocolCitations.Sections(File.ReadAllText(Path.Combine(RepoPaths.Root, ProtocolDoc)));
        var citations = ProtocolCitations.ScanRepository(RepoPaths.Root).ToList();

        var missing = citations.Where(c => !sections.Contains(c.Section)).Select(c => $"{c.File}:{c.Line}: {Sign}{c.Section}").ToList();
        Assert.True(missing.Count == 0, $"{ProtocolDoc} has no such section:\n{string.Join('\n', missing)}");

        // The code cites it from dozens of places; a scanner that finds next to none is broken.
        Assert.True(citations.Count(c => c.File.StartsWith("src/", StringComparison.Ordinal)) >= 40, $"only {citations.Count} citations found");
    }

    [Fact]
    public void NoCitationOfTheOldNotesRemains()
    {
        var old = ProtocolCitations.ScanRepositoryForOldCitations(RepoPaths.Root).Select(c => $"{c.File}:{c.Line}: {c.Text}").ToList();
        Assert.True(old.Count == 0, $"cite {ProtocolDoc} {Sign}N.M instead:\n{string.Join('\n', old)}");
    }

    [Fact]
    public void ProtocolMd_NumbersEachSectionOnce()
    {
        var headings = ProtocolCitations.Headings(File.ReadAllText(Path.Combine(RepoPaths.Root, ProtocolDoc)));
        var twice = headings.GroupBy(h => h).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.Empty(twice);
        Assert.Contains("1.6", headings);
        Assert.Contains("8", headings);
    }

    [Fact]
    public void Scanner_ReportsFileLineAndSection_OfEveryCitation()
    {
        var text = $"// fine (protocol.md {Sign}6.6, {Sign}6.7)\n/// <summary>(protocol.md {Sign}99.1).</summary>\nRFC 9293 3.10.7.4\n";
        var found = ProtocolCitations.ScanText("src/X.cs", text).ToList();
        Assert.Equal(new[] { ("src/X.cs", 1, "6.6"), ("src/X.cs", 1, "6.7"), ("src/X.cs", 2, "99.1") }, found.Select(c => (c.File, c.Line, c.Section)));

        var sections = ProtocolCitations.Sections($"## 6. Tunnel\n### 6.6 Socket lifecycle\n### 6.7 Flow control\n");
        Assert.Equal(new[] { "99.1" }, found.Where(c => !sections.Contains(c.Section)).Select(c => c.Section));
    }

    [Theory]
    [InlineData($"// {Old} 6.7: tokens")]
    [InlineData("/// (BRI" + "EF 7, main channel rows)")]
    [InlineData($"the rows of {Old} section 7.")]
    [InlineData($"as the {Old} says")]
    public void Scanner_FindsOldCitations(string line)
    {
        Assert.Single(ProtocolCitations.ScanTextForOldCitations("docs/x.md", line));
    }

    [Fact]
    public void Scanner_LeavesOtherUsesOfTheWordAlone()
    {
        Assert.Empty(ProtocolCitations.ScanTextForOldCitations("docs/x.md", "a brief pause; briefly; in brief"));
    }
}

/// <summary>One place a section of docs/protocol.md is cited: file relative to the root, 1-based line.</summary>
internal readonly record struct ProtocolCitation(string File, int Line, string Section);

/// <summary>A line that still cites the old notes.</summary>
internal readonly record struct OldCitation(string File, int Line, string Text);

/// <summary>Finds section headings of docs/protocol.md and the citations of them in the repository.</summary>
internal static partial class ProtocolCitations
{
    private static readonly string[] s_scanned = ["src", "tests", "tools", "docs", "README.md"];

    /// <summary>The numbers of the headings (<c>## 6. Tunnel</c> is 6, <c>### 6.7 Flow</c> is 6.7).</summary>
    public static List<string> Headings(string markdown) =>
        [.. HeadingPattern().Matches(markdown).Select(m => m.Groups["n"].Value)];

    /// <summary>The set of section numbers a citation may name.</summary>
    public static HashSet<string> Sections(string markdown) => [.. Headings(markdown)];

    /// <summary>Every section sign with a number in the scanned files.</summary>
    public static IEnumerable<ProtocolCitation> ScanRepository(string root) =>
        TextFiles(root).SelectMany(file => ScanText(Relative(root, file), File.ReadAllText(file)));

    /// <summary>Every line of the scanned files that cites the old notes.</summary>
    public static IEnumerable<OldCitation> ScanRepositoryForOldCitations(string root) =>
        TextFiles(root).SelectMany(file => ScanTextForOldCitations(Relative(root, file), File.ReadAllText(file)));

    /// <summary>The citations in one file's text.</summary>
    public static IEnumerable<ProtocolCitation> ScanText(string file, string text)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            foreach (Match match in CitationPattern().Matches(lines[i]))
            {
                yield return new ProtocolCitation(file, i + 1, match.Groups["n"].Value);
            }
        }
    }

    /// <summary>The lines of one file's text that cite the old notes.</summary>
    public static IEnumerable<OldCitation> ScanTextForOldCitations(string file, string text)
    {
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            if (OldCitationPattern().IsMatch(lines[i]))
            {
                yield return new OldCitation(file, i + 1, lines[i].Trim());
            }
        }
    }

    private static IEnumerable<string> TextFiles(string root)
    {
        foreach (var name in s_scanned)
        {
            var path = Path.Combine(root, name);
            if (File.Exists(path))
            {
                yield return path;
                continue;
            }

            foreach (var file in Walk(path))
            {
                yield return file;
            }
        }
    }

    /// <summary>Files under a folder, without build output (bin, obj) or hidden folders, text only.</summary>
    private static IEnumerable<string> Walk(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder))
        {
            if (IsText(file))
            {
                yield return file;
            }
        }

        foreach (var sub in Directory.EnumerateDirectories(folder))
        {
            var name = Path.GetFileName(sub);
            if (name is "bin" or "obj" || name.StartsWith('.'))
            {
                continue;
            }

            foreach (var file in Walk(sub))
            {
                yield return file;
            }
        }
    }

    private static bool IsText(string file)
    {
        if (new FileInfo(file).Length > 4 << 20)
        {
            return false;
        }

        using var stream = File.OpenRead(file);
        var head = new byte[8192];
        var read = stream.Read(head);
        return Array.IndexOf(head, (byte)0, 0, read) < 0;
    }

    private static string Relative(string root, string file) => Path.GetRelativePath(root, file).Replace('\\', '/');

    [GeneratedRegex(@"^#{1,6}[ \t]+(?<n>\d+(?:\.\d+)*)\.?[ \t]", RegexOptions.Multiline)]
    private static partial Regex HeadingPattern();

    [GeneratedRegex(@"\u00a7[ ]?(?<n>\d+(?:\.\d+)*)")]
    private static partial Regex CitationPattern();

    [GeneratedRegex(@"\bbrief(?:'s)?\s+(?:section\s+)?\d|\bthe\s+brief\b", RegexOptions.IgnoreCase)]
    private static partial Regex OldCitationPattern();
}
