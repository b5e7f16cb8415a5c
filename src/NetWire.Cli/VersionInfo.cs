using System.CommandLine;
using System.CommandLine.Invocation;
using System.Reflection;

namespace NetWire.Cli;

/// <summary>
/// What <c>netwire --version</c> prints: the version and the git commit the build was made from
/// (the SDK puts the commit into the informational version as <c>VERSION+SHA</c> when it builds
/// from a git checkout), then the .NET runtime.
/// </summary>
internal static class VersionInfo
{
    /// <summary>The version without the commit, e.g. <c>1.0.0</c>.</summary>
    public static string Version => Split().Version;

    /// <summary>The full commit id, or <c>unknown</c> for a build outside a git checkout.</summary>
    public static string Commit => Split().Commit;

    /// <summary>One line: <c>netwire 1.0.0 (commit 0123abc...) .NET 10.0.1</c>.</summary>
    public static string Text => $"netwire {Version} (commit {Commit}) .NET {Environment.Version}";

    /// <summary>Makes the root command's <c>--version</c> print <see cref="Text"/>.</summary>
    public static void Attach(RootCommand root)
    {
        foreach (var option in root.Options)
        {
            if (option is VersionOption version)
            {
                version.Action = new PrintAction();
            }
        }
    }

    private static (string Version, string Commit) Split()
    {
        var informational = typeof(VersionInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";
        var plus = informational.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? (informational, "unknown") : (informational[..plus], informational[(plus + 1)..]);
    }

    private sealed class PrintAction : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine(Text);
            return ExitCodes.Ok;
        }
    }
}
