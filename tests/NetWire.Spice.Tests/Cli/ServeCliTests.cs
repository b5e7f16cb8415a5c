using System.Net;
using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Cli;

/// <summary><c>netwire serve</c> as users meet it: help, usage errors, a busy port.</summary>
public sealed class ServeCliTests
{
    private static Task<ProcessResult> NetwireAsync(params string[] args) =>
        ProcessRunner.RunAsync("dotnet", [RepoPaths.NetwireDll, .. args], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task Help_ShowsTheSpiceOptions()
    {
        var result = await NetwireAsync("serve", "--help");
        Assert.Equal(0, result.ExitCode);
        foreach (var option in new[] { "--spice-addr", "--spice-port", "--password", "--password-file", "--password-expires", "--disable-ticketing" })
        {
            Assert.Contains(option, result.Stdout, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--password", "0123456789012345678901234567890123456789012345678901234567890")]
    [InlineData("--spice-addr", "localhost:5930")]
    [InlineData("--spice-port", "70000")]
    [InlineData("--password-expires", "tomorrow")]
    public async Task BadValues_ExitWithUsageCode(string option, string value)
    {
        string[] args = option == "--password" ? ["serve", option, value] : ["serve", option, value, "--disable-ticketing"];
        if (option == "--password-expires")
        {
            args = ["serve", "--password", "x", option, value];
        }

        var result = await NetwireAsync(args);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("netwire serve:", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TwoTicketChoices_AreAUsageError()
    {
        Assert.Equal(2, (await NetwireAsync("serve", "--guest", "none", "--password", "x", "--password-file", "/dev/null")).ExitCode);
        Assert.Equal(2, (await NetwireAsync("serve", "--password", "x", "--disable-ticketing")).ExitCode);
    }

    [Fact]
    public async Task BusyPort_ExitsWithSetupCode()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        holder.Listen();
        var port = ((IPEndPoint)holder.LocalEndPoint!).Port;
        var result = await NetwireAsync("serve", "--guest", "none", "--disable-ticketing", "--spice-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(3, result.ExitCode);
        Assert.Contains("cannot listen", result.Stderr, StringComparison.Ordinal);
    }
}
