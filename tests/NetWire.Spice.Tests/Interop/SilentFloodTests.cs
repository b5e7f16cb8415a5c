using System.Net;
using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Spice.Tests.Interop;

/// <summary>
/// A real spice-gtk client links while hundreds of connections to the same port never send a
/// link message: NetWire beside QEMU's own spice-server (<c>qemu-system-x86_64 -machine none
/// -spice</c>) under the same flood. The flood keeps its count up: a connection the server drops
/// (NetWire's link deadline, an eviction) is opened again at once.
/// </summary>
[Trait("Category", "Host")]
public sealed class SilentFloodTests
{
    [Fact]
    public async Task RealClient_Links_While500SilentConnectionsAreOpen_AsWithQemusSpiceServer()
    {
        GtkClient.Require();
        HostRequirements.RequireCommand("qemu-system-x86_64");
        await using var qemu = await QemuSpice.StartAsync();
        await using (var flood = await SilentFlood.OpenAsync(qemu.Port, 500))
        {
            var reference = await GtkClient.RunAsync(qemu.Port, null, seconds: 2);
            Assert.True(reference.ExitCode == 0, "QEMU's spice-server: " + reference.Stdout + reference.Stderr);
            Assert.Equal(500, flood.Open);
        }

        await using var serve = await ServeProcess.StartAsync("--disable-ticketing");
        await using (var flood = await SilentFlood.OpenAsync(serve.Port, 500))
        {
            var result = await GtkClient.RunAsync(serve.Port, null, seconds: 2);
            Assert.True(result.ExitCode == 0, "netwire: " + result.Stdout + result.Stderr + serve.Process.FormattedOutput[^Math.Min(4000, serve.Process.FormattedOutput.Length)..]);
            Assert.Contains("opened=1 lost=0", result.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task RealClient_Links_WhenTheFloodExceedsThePendingBound_AndTheOldestAreEvicted()
    {
        GtkClient.Require();
        await using var serve = await ServeProcess.StartAsync("--disable-ticketing");
        await using var flood = await SilentFlood.OpenAsync(serve.Port, 1500);
        var result = await GtkClient.RunAsync(serve.Port, null, seconds: 2);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        await serve.Process.WaitForLineAsync(l => l.Contains("links in progress: evicting the oldest silent ones", StringComparison.Ordinal), TimeSpan.FromSeconds(10));
        Assert.NotEmpty(serve.LinesWith("evicted: the oldest silent"));
        Assert.DoesNotContain(serve.Process.Lines, l => l.Text.StartsWith("fail:", StringComparison.Ordinal) || l.Text.StartsWith("crit:", StringComparison.Ordinal));
    }

    /// <summary>QEMU with no machine, only its SPICE server, ticketing off, on a free loopback port.</summary>
    private sealed class QemuSpice : IAsyncDisposable
    {
        private readonly ManagedProcess _process;

        private QemuSpice(ManagedProcess process, int port)
        {
            _process = process;
            Port = port;
        }

        public int Port { get; }

        public static async Task<QemuSpice> StartAsync()
        {
            int port;
            using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                port = ((IPEndPoint)probe.LocalEndPoint!).Port;
            }

            var process = ProcessRunner.Start("qemu-system-x86_64", ["-machine", "none", "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "none",
                "-spice", $"port={port},addr=127.0.0.1,disable-ticketing=on"]);
            using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (true)
            {
                try
                {
                    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), guard.Token);
                    return new QemuSpice(process, port);
                }
                catch (SocketException) when (!process.HasExited)
                {
                    await Task.Delay(50, guard.Token);
                }
                catch
                {
                    await process.DisposeAsync();
                    throw;
                }
            }
        }

        public ValueTask DisposeAsync() => _process.DisposeAsync();
    }

    /// <summary>N connections that never send a byte; each one the server closes is opened again.</summary>
    private sealed class SilentFlood : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _holders = [];
        private int _open;
        private int _reopened;

        /// <summary>Connections open now.</summary>
        public int Open => Volatile.Read(ref _open);

        /// <summary>Connections the server closed (and that were opened again).</summary>
        public int Reopened => Volatile.Read(ref _reopened);

        public static async Task<SilentFlood> OpenAsync(int port, int count)
        {
            var flood = new SilentFlood();
            var endPoint = new IPEndPoint(IPAddress.Loopback, port);
            for (var i = 0; i < count; i++)
            {
                var first = await ConnectAsync(endPoint, flood._stop.Token);
                Interlocked.Increment(ref flood._open);
                flood._holders.Add(flood.HoldAsync(first, endPoint));
            }

            return flood;
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_holders);
            _stop.Dispose();
        }

        private static async Task<Socket> ConnectAsync(IPEndPoint endPoint, CancellationToken cancellationToken)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(endPoint, cancellationToken);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        private async Task HoldAsync(Socket socket, IPEndPoint endPoint)
        {
            var buffer = new byte[64];
            try
            {
                while (true)
                {
                    try
                    {
                        // Returns 0 or fails when the server closes it; the flood never writes.
                        await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    }
                    catch (SocketException)
                    {
                    }

                    socket.Dispose();
                    Interlocked.Decrement(ref _open);
                    Interlocked.Increment(ref _reopened);
                    socket = await ConnectAsync(endPoint, _stop.Token);
                    Interlocked.Increment(ref _open);
                }
            }
            catch (OperationCanceledException)
            {
                socket.Dispose();
            }
        }
    }
}
