// tools/bench/tunnel.sh's measuring program: see tools/bench/README.md, "tunnel.sh".
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Tls;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Spice;
using NetWire.Spice.Link;
using NetWire.Stack;
using NetWire.Tunnel;
using NetWire.Tunnel.Client;

var runs = 3;
var mib = 200;
var parallel = 20;
var connects = 200;
string? x509Dir = null;
for (var i = 0; i + 1 < args.Length; i += 2)
{
    if (args[i] == "--x509-dir")
    {
        x509Dir = args[i + 1];
        continue;
    }

    var value = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
    switch (args[i])
    {
        case "--runs": runs = value; break;
        case "--mib": mib = value; break;
        case "--parallel": parallel = value; break;
        case "--connects": connects = value; break;
        default: throw new ArgumentException($"unknown option {args[i]}");
    }
}

var clientScript = Path.Combine(AppContext.BaseDirectory, "client.py");
using var stop = new CancellationTokenSource();

// The loopback service: GET /N answers N bytes.
var payload = new byte[1 << 20];
using var http = new Socket(SocketType.Stream, ProtocolType.Tcp);
http.Bind(new IPEndPoint(IPAddress.Loopback, 0));
http.Listen(512);
var httpPort = ((IPEndPoint)http.LocalEndPoint!).Port;
_ = Task.Run(async () =>
{
    while (true)
    {
        var socket = await http.AcceptAsync(stop.Token);
        _ = Task.Run(async () =>
        {
            using (socket)
            {
                var request = new byte[4096];
                var used = 0;
                while (used < request.Length && Encoding.ASCII.GetString(request, 0, used).IndexOf("\r\n\r\n", StringComparison.Ordinal) < 0)
                {
                    var n = await socket.ReceiveAsync(request.AsMemory(used), SocketFlags.None);
                    if (n == 0)
                    {
                        return;
                    }

                    used += n;
                }

                var path = Encoding.ASCII.GetString(request, 0, used).Split(' ')[1];
                var size = long.Parse(path.AsSpan(1), CultureInfo.InvariantCulture);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"HTTP/1.0 200 OK\r\nContent-Length: {size}\r\n\r\n"), SocketFlags.None);
                for (var left = size; left > 0;)
                {
                    var chunk = (int)Math.Min(left, payload.Length);
                    await socket.SendAsync(payload.AsMemory(0, chunk), SocketFlags.None);
                    left -= chunk;
                }

                socket.Shutdown(SocketShutdown.Send);
            }
        });
    }
});

// The SPICE server with the tunnel, the gateway (host loopback allowed for the direct path).
GatewayEnd? gatewayEnd = null;
var baseOptions = new GatewayOptions { AllowHostLoopback = true };
var tunnel = new TunnelGateway(baseOptions, () => gatewayEnd?.GuestIp, new TunnelOptions());
var spiceOptions = new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), PingInterval = TimeSpan.Zero };
spiceOptions.Channels.Add(new TunnelChannelService(tunnel, NullLoggerFactory.Instance));
if (x509Dir is not null)
{
    // The TLS port, and a second tunnel client over it: the same service through TLS.
    spiceOptions.TlsEndPoint = new IPEndPoint(IPAddress.Loopback, 0);
    spiceOptions.Tls = new TlsSettings(X509Credentials.Load(x509Dir, TlsRole.Server, DateTimeOffset.UtcNow));
}

var tickets = new TicketAuthority(TimeProvider.System);
tickets.DisableTicketing();
await using var spice = new SpiceServer(spiceOptions, tickets, NullLoggerFactory.Instance);
spice.Start();

var ns = $"nwtb-{Environment.ProcessId}";
var tap = $"nwtb{Environment.ProcessId % 100000}";
await using var tapEnd = new TapEnd("ns", tap, FramePool.Shared, WireEnd.DefaultQueueCapacity, NullLogger.Instance);
gatewayEnd = new GatewayEnd("gateway", baseOptions with { VirtualServices = tunnel }, FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, NullLogger.Instance);
var link = new Link(tapEnd, gatewayEnd, null, NullLogger.Instance);
var running = link.RunAsync(stop.Token);
try
{
    Ip("netns", "add", ns);
    for (var i = 0; i < 3000 && !(File.Exists($"/sys/class/net/{tap}/flags") && (Convert.ToInt32(File.ReadAllText($"/sys/class/net/{tap}/flags").Trim(), 16) & 1) != 0); i++)
    {
        await Task.Delay(10);
    }

    Ip("link", "set", tap, "netns", ns);
    Ip("-n", ns, "link", "set", tap, "name", "tap0");
    Ip("-n", ns, "link", "set", "tap0", "up");
    Ip("-n", ns, "link", "set", "lo", "up");
    Ip("-n", ns, "addr", "add", "10.0.2.100/24", "dev", "tap0");
    Ip("-n", ns, "route", "add", "default", "via", "10.0.2.2", "dev", "tap0");

    var published = new TaskCompletionSource<IPAddress>(TaskCreationOptions.RunContinuationsAsynchronously);
    var client = new TunnelClient(
        new TunnelClientOptions("127.0.0.1", spice.LocalEndPoint.Port, [], [TunnelServiceSpec.Parse($"web=127.0.0.1:{httpPort},port=80")]),
        (_, address) => published.TrySetResult(address),
        NullLogger.Instance);
    var clientRun = client.RunAsync(stop.Token);
    var vip = (await published.Task.WaitAsync(TimeSpan.FromSeconds(30))).ToString();
    var paths = new List<(string Name, string Host, int Port)> { ("direct (gateway NAT)", "10.0.2.2", httpPort), ("tunnel", vip, 80) };
    var tlsRun = Task.CompletedTask;
    if (x509Dir is not null)
    {
        var tlsPublished = new TaskCompletionSource<IPAddress>(TaskCreationOptions.RunContinuationsAsynchronously);
        var tlsClient = new TunnelClient(
            new TunnelClientOptions("127.0.0.1", spice.TlsEndPoint!.Port, [], [TunnelServiceSpec.Parse($"webtls=127.0.0.1:{httpPort},port=81")])
            {
                Tls = new TlsSettings(X509Credentials.LoadAuthorities(Path.Combine(x509Dir, X509Credentials.CaCertFile), DateTimeOffset.UtcNow)),
            },
            (_, address) => tlsPublished.TrySetResult(address),
            NullLogger.Instance);
        tlsRun = tlsClient.RunAsync(stop.Token);
        paths.Add(("tunnel over TLS", (await tlsPublished.Task.WaitAsync(TimeSpan.FromSeconds(30))).ToString(), 81));
    }

    var results = new Dictionary<(string, string), List<double>>();
    void Add(string path, string metric, double value)
    {
        if (!results.TryGetValue((path, metric), out var list))
        {
            results[(path, metric)] = list = [];
        }

        list.Add(value);
    }

    long total = (long)mib * 1024 * 1024;
    var self = Process.GetCurrentProcess();
    for (var run = 0; run < runs; run++)
    {
        foreach (var (name, host, port) in paths)
        {
            // CPU of this process (gateway, SPICE server, tunnel clients) per GB moved by the single download.
            self.Refresh();
            var cpuBefore = self.TotalProcessorTime;
            var one = Client("get", host, port.ToString(CultureInfo.InvariantCulture), total.ToString(CultureInfo.InvariantCulture), "1");
            self.Refresh();
            Add(name, "1 socket MB/s", one.GetProperty("mbytes_per_s").GetDouble());
            Add(name, "CPU s/GB", (self.TotalProcessorTime - cpuBefore).TotalSeconds / (total / 1e9));
            var many = Client("get", host, port.ToString(CultureInfo.InvariantCulture), (total / parallel).ToString(CultureInfo.InvariantCulture), parallel.ToString(CultureInfo.InvariantCulture));
            Add(name, $"{parallel} sockets MB/s", many.GetProperty("mbytes_per_s").GetDouble());
            var open = Client("connect", host, port.ToString(CultureInfo.InvariantCulture), connects.ToString(CultureInfo.InvariantCulture));
            Add(name, "connect median µs", open.GetProperty("median_us").GetDouble());
            Add(name, "connect p99 µs", open.GetProperty("p99_us").GetDouble());
        }
    }

    string[] metrics = ["1 socket MB/s", "CPU s/GB", $"{parallel} sockets MB/s", "connect median µs", "connect p99 µs"];
    Console.WriteLine($"| path | {string.Join(" | ", metrics)} |");
    Console.WriteLine($"|---|{string.Concat(Enumerable.Repeat("---|", metrics.Length))}");
    foreach (var (name, _, _) in paths)
    {
        Console.WriteLine($"| {name} | {string.Join(" | ", metrics.Select(m => Median(results[(name, m)]).ToString(m == "CPU s/GB" ? "0.00" : "0", CultureInfo.InvariantCulture)))} |");
    }

    // Ratios of a costlier path to a cheaper one: slower (MB/s) or more (µs, CPU).
    string Cost(string cheap, string costly) => string.Join(" | ", metrics.Select(m =>
    {
        var a = Median(results[(cheap, m)]);
        var b = Median(results[(costly, m)]);
        return (m.EndsWith("MB/s", StringComparison.Ordinal) ? a / b : b / a).ToString("0.00", CultureInfo.InvariantCulture) + "x";
    }));
    Console.WriteLine($"| tunnel cost (direct/tunnel for MB/s, tunnel/direct for µs and CPU) | {Cost(paths[0].Name, paths[1].Name)} |");
    if (paths.Count > 2)
    {
        Console.WriteLine($"| TLS cost (tunnel/TLS for MB/s, TLS/tunnel for µs and CPU) | {Cost(paths[1].Name, paths[2].Name)} |");
    }

    Console.WriteLine();
    Console.WriteLine($"Medians of {runs} interleaved runs; {mib} MiB per throughput measurement, {connects} connects per latency measurement; CPU s/GB is this process's CPU time (gateway, SPICE server, tunnel clients) over the single download per 10^9 bytes.");
    await stop.CancelAsync();
    await clientRun;
    await tlsRun;
}
finally
{
    await stop.CancelAsync();
    try
    {
        await running;
    }
    catch (Exception ex) when (ex is OperationCanceledException or IOException)
    {
    }

    await gatewayEnd.DisposeAsync();
    RunProcess("ip", ["netns", "del", ns], check: false);
}

static double Median(List<double> values)
{
    var sorted = values.OrderBy(v => v).ToArray();
    return sorted[sorted.Length / 2];
}

JsonElement Client(params string[] arguments)
{
    var output = RunProcess("ip", ["netns", "exec", ns, "python3", clientScript, .. arguments], check: true);
    var json = JsonDocument.Parse(output).RootElement;
    if (json.TryGetProperty("errors", out var errors) && errors.GetArrayLength() > 0)
    {
        throw new InvalidOperationException($"client errors: {errors}");
    }

    return json;
}

static void Ip(params string[] arguments) => RunProcess("ip", arguments, check: true);

static string RunProcess(string file, string[] arguments, bool check)
{
    var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var argument in arguments)
    {
        start.ArgumentList.Add(argument);
    }

    using var process = Process.Start(start)!;
    var output = process.StandardOutput.ReadToEnd();
    var error = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (check && process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} {string.Join(' ', arguments)}: exit {process.ExitCode}: {error}");
    }

    return output;
}
