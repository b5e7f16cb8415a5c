using System.Globalization;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>
/// A capture of spice-gtk talking to <c>netwire serve</c> (a good link, a refused one) decodes
/// in tshark 4.0 as SPICE with no malformed link or main-channel message.
/// </summary>
[Trait("Category", "Host")]
public sealed class SpiceTsharkDecodeTests
{
    [Fact]
    public async Task SpiceGtkConversation_DecodesWithoutMalformedMessages()
    {
        GtkClient.Require();
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("tshark");
        var dir = Directory.CreateTempSubdirectory("nwspice-cap-").FullName;
        try
        {
            File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
            var pcap = Path.Combine(dir, "spice.pcapng");
            await using var serve = await ServeProcess.StartAsync("--password", "s3cret");
            var port = serve.Port.ToString(CultureInfo.InvariantCulture);
            await using (var capture = ProcessRunner.Start("tshark", ["-i", "lo", "-f", $"tcp port {port}", "-w", pcap]))
            {
                await capture.WaitForLineAsync(l => l.Contains("Capturing on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                var good = await GtkClient.RunAsync(serve.Port, "s3cret", seconds: 3);
                Assert.True(good.ExitCode == 0, good.Stdout + good.Stderr);
                var bad = await GtkClient.RunAsync(serve.Port, "wrong", seconds: 5);
                Assert.Equal(2, bad.ExitCode);

                // Let the last segments reach the capture before stopping it (SIGINT flushes).
                await Task.Delay(500, TestContext.Current.CancellationToken);
                capture.Signal(2);
                await capture.WaitForExitAsync(TimeSpan.FromSeconds(30));
            }

            var decode = new[] { "-r", pcap, "-d", $"tcp.port=={port},spice" };
            // SPICE in both links' connections (the good one and the refused one); how many frames
            // that takes depends on how the kernel cut the segments, so the frames are not counted.
            var spice = await TsharkAsync([.. decode, "-Y", "spice", "-T", "fields", "-e", "tcp.stream", "-e", "frame.number", "-e", "spice.message_type"]);
            Assert.True(spice.Select(l => l.Split('\t')[0]).Distinct().Count() >= 2, string.Join('\n', spice));
            var malformed = await TsharkAsync([.. decode, "-Y", "_ws.malformed || _ws.expert.severity >= \"error\"", "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info"]);
            Assert.True(malformed.Length == 0, "malformed frames:\n" + string.Join('\n', malformed));

            var verbose = string.Join('\n', await TsharkAsync([.. decode, "-Y", "spice", "-V"]));
            Assert.Contains("Link client header", verbose, StringComparison.Ordinal);
            Assert.Contains("Link server header", verbose, StringComparison.Ordinal);
            Assert.Contains("Session ID", verbose, StringComparison.Ordinal);
            Assert.Contains("netwire", verbose, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static async Task<string[]> TsharkAsync(string[] args)
    {
        var result = await ProcessRunner.RunAsync("tshark", args, TimeSpan.FromSeconds(120));
        Assert.True(result.ExitCode == 0, result.Stderr);
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
