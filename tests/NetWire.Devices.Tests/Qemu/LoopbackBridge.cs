using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Wire;
using NetWire.Devices.Qemu;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Qemu;

/// <summary>A guest end under test linked to an in-memory host end, running until disposed.</summary>
internal sealed class LoopbackBridge : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private readonly string _dir;

    private LoopbackBridge(WireEnd guest, InMemoryWireEnd host, string dir)
    {
        Guest = guest;
        Host = host;
        _dir = dir;
        _run = new Link(guest, host, null, NullLogger.Instance).RunAsync(_stop.Token);
    }

    public WireEnd Guest { get; }

    public InMemoryWireEnd Host { get; }

    public string Dir => _dir;

    /// <summary>Frames of this bridge only, so tests running in parallel do not disturb its count.</summary>
    public FramePool Pool { get; private init; } = FramePool.Shared;

    public static async Task<LoopbackBridge> StreamAsync(int queue = 64, int hostQueue = 64, Microsoft.Extensions.Logging.ILogger? logger = null, TimeSpan? drainLimit = null)
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        var pool = new FramePool();
        var guest = new QemuStreamEnd("guest", new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(dir, "g.sock")), connect: false, pool, queue, logger ?? NullLogger.Instance)
        {
            DrainLimit = drainLimit ?? TimeSpan.FromSeconds(5),
        };

        var bridge = new LoopbackBridge(guest, new InMemoryWireEnd("host", hostQueue, pool: pool), dir) { Pool = pool };
        await guest.Ready.WaitAsync(TimeSpan.FromSeconds(10));
        return bridge;
    }

    public static LoopbackBridge With(WireEnd guest, int hostQueue = 64)
    {
        var dir = Directory.CreateTempSubdirectory("nwtest-").FullName;
        return new LoopbackBridge(guest, new InMemoryWireEnd("host", hostQueue), dir);
    }

    public string SocketPath => Path.Combine(_dir, "g.sock");

    /// <summary>Polls the host end until <paramref name="count"/> frames arrived (or times out), returning them.</summary>
    public async Task<List<byte[]>> HostReceivesAsync(int count, TimeSpan? timeout = null)
    {
        var list = new List<byte[]>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (list.Count < count && DateTime.UtcNow < deadline)
        {
            list.AddRange(Host.Deliver());
            if (list.Count < count)
            {
                await Task.Delay(5);
            }
        }

        return list;
    }

    /// <summary>Waits until <paramref name="condition"/> holds, polling; false on timeout.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(10);
        }

        return true;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _run.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (OperationCanceledException)
        {
        }

        await Guest.DisposeAsync();
        await Host.DisposeAsync();
        _stop.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    public static IPEndPoint FreeUdpEndPoint()
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Udp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return (IPEndPoint)s.LocalEndPoint!;
    }
}
