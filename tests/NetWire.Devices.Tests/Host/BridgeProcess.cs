using System.Text.Json;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Host;

/// <summary>A real <c>netwire bridge</c> process (optionally inside a namespace), with its status file and capture.</summary>
internal sealed class BridgeProcess : IAsyncDisposable
{
    private readonly ManagedProcess _process;

    private BridgeProcess(ManagedProcess process, string dir)
    {
        _process = process;
        Dir = dir;
    }

    public string Dir { get; }

    public string StatusPath => Path.Combine(Dir, "status.json");

    public string CapturePath => Path.Combine(Dir, "capture.pcapng");

    public ManagedProcess Process => _process;

    /// <summary>Starts <c>netwire bridge --guest GUEST --host HOST</c> with a capture and a status file, in <paramref name="ns"/> if given.</summary>
    public static async Task<BridgeProcess> StartAsync(string guest, string host, NetNamespace? ns, string dir, params string[] extra)
    {
        string[] args =
        [
            "dotnet", RepoPaths.NetwireDll, "bridge", "--guest", guest, "--host", host,
            "--capture", Path.Combine(dir, "capture.pcapng"), "--status-file", Path.Combine(dir, "status.json"), .. extra,
        ];
        var process = ns is null ? ProcessRunner.Start(args[0], args[1..]) : ns.Start(args);
        var bridge = new BridgeProcess(process, dir);
        await process.WaitForLineAsync(l => l.Contains("Bridge up", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        return bridge;
    }

    /// <summary>Waits for a log line, returning it.</summary>
    public Task<string> WaitForLogAsync(string text, TimeSpan? timeout = null) =>
        _process.WaitForLineAsync(l => l.Contains(text, StringComparison.Ordinal), timeout ?? TimeSpan.FromSeconds(30));

    /// <summary>Reads the status file written most recently.</summary>
    public JsonElement ReadStatus()
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(StatusPath));
        return document.RootElement.Clone();
    }

    /// <summary>Polls the status file (rewritten every second) until <paramref name="condition"/> holds.</summary>
    public async Task<JsonElement> WaitForStatusAsync(Func<JsonElement, bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (true)
        {
            if (File.Exists(StatusPath))
            {
                var status = ReadStatus();
                if (condition(status))
                {
                    return status;
                }

                if (DateTime.UtcNow > deadline)
                {
                    Assert.Fail($"status never matched; last:\n{status}");
                }
            }
            else if (DateTime.UtcNow > deadline)
            {
                Assert.Fail("no status file written");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Stops the bridge with SIGTERM and returns its final status.</summary>
    public async Task<JsonElement> StopAsync()
    {
        _process.Terminate();
        var code = await _process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(code == 0, $"netwire exited {code}:\n{_process.FormattedOutput}");
        var status = ReadStatus();
        Assert.Equal("stopped", status.GetProperty("state").GetString());
        return status;
    }

    public static JsonElement End(JsonElement status, string name) =>
        status.GetProperty("ends").EnumerateArray().Single(e => e.GetProperty("name").GetString() == name);

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
