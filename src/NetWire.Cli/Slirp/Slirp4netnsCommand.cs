using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using NetWire.Cli.Commands;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.Wire;
using NetWire.Devices.Tap;
using NetWire.Stack;

namespace NetWire.Cli.Slirp;

/// <summary>
/// <c>netwire slirp4netns [OPTION]... PID|PATH [TAPNAME]</c>: slirp4netns 1.2's command line and
/// behaviour on NetWire's user-mode gateway, for Podman's <c>network_cmd_path</c>
/// (docs/podman.md). It parses its own arguments the way slirp4netns's getopt_long does and
/// prints slirp4netns's help layout, because Podman reads the option names from <c>--help</c>.
/// </summary>
/// <remarks>
/// The TAP is opened inside the target's namespaces by <see cref="NamespaceTap"/> (a helper
/// process started through nsenter, which sends the fd back), so nothing needs root when the
/// namespaces are the caller's. The gateway runs in this process, in the caller's namespaces,
/// where its sockets reach the host. It stops on the exit fd (readable or closed), SIGTERM or
/// SIGINT, or when the TAP fails because the namespace went away; all of them exit 0.
/// </remarks>
internal static class Slirp4netnsCommand
{
    public const string Verb = "slirp4netns";

    /// <summary>The hidden verb the helper runs as, inside the namespaces (not listed in --help).</summary>
    public const string HelperVerb = "slirp4netns-tap-helper";

    /// <summary>The help, in slirp4netns 1.2's layout and option order; each line says what NetWire does.</summary>
    public const string Help = """
        Usage: netwire slirp4netns [OPTION]... PID|PATH [TAPNAME]
        User-mode networking for unprivileged network namespaces, on NetWire's gateway.
        slirp4netns 1.2's command line (docs/podman.md says what differs).

        -c, --configure          bring up the interface (10.0.2.100/24 or .100 of --cidr, default route via .2, MTU, lo up)
        -e, --exit-fd=FD         specify the FD for terminating slirp4netns (readable or closed: exit)
        -r, --ready-fd=FD        specify the FD to write to when the network is configured (writes "1")
        -m, --mtu=MTU            specify MTU (default=1500, max=65520)
        -6, --enable-ipv6        enable IPv6 (fd00::/64 by router advertisement, gateway fd00::2, DNS fd00::3)
        -a, --api-socket=PATH    specify API socket path (add_hostfwd, list_hostfwd, remove_hostfwd; IPv4 or IPv6 host_addr)
        --cidr=CIDR              specify network address CIDR (default=10.0.2.0/24, at most /25)
        --disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
        --netns-type=TYPE        specify network namespace type ([path|pid], default=pid)
        --userns-path=PATH       specify user namespace path
        --enable-sandbox         accepted; no new mount namespace and no capabilities dropped (NetWire needs no root)
        --enable-seccomp         accepted; no seccomp filter is installed
        --outbound-addr=IPv4     bind outbound IPv4 sockets to this address of the host, or an INTERFACE's first IPv4 address (not host loopback)
        --outbound-addr6=IPv6    bind outbound IPv6 sockets to this address, or an INTERFACE's first IPv6 address outside fe80::/10 (needs -6)
        --disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (and fd00::3)
        --macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
        --target-type=TYPE       specify the target type ([netns], default=netns; bess is refused)
        -h, --help               show this help and exit
        -v, --version            show version and exit

        """;

    /// <summary>Options that take a value, by long name, with their short letters.</summary>
    /// <summary>How often the namespace's path is looked at.</summary>
    private static readonly TimeSpan s_namespacePoll = TimeSpan.FromSeconds(1);

    private static readonly Dictionary<string, char?> s_withValue = new(StringComparer.Ordinal)
    {
        ["exit-fd"] = 'e', ["ready-fd"] = 'r', ["mtu"] = 'm', ["api-socket"] = 'a', ["cidr"] = null, ["netns-type"] = null,
        ["userns-path"] = null, ["outbound-addr"] = null, ["outbound-addr6"] = null, ["macaddress"] = null, ["target-type"] = null,
    };

    private static readonly Dictionary<string, char?> s_flags = new(StringComparer.Ordinal)
    {
        ["configure"] = 'c', ["enable-ipv6"] = '6', ["disable-host-loopback"] = null, ["enable-sandbox"] = null,
        ["enable-seccomp"] = null, ["disable-dns"] = null, ["help"] = 'h', ["version"] = 'v',
    };

    /// <summary>Runs the verb with the arguments after <c>slirp4netns</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        Slirp4netnsOptions options;
        try
        {
            options = Parse(args);
        }
        catch (FormatException ex)
        {
            await Console.Error.WriteLineAsync($"netwire slirp4netns: {ex.Message}\nTry 'netwire slirp4netns --help'.").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        if (options.ShowHelp)
        {
            await Console.Out.WriteAsync(Help).ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        if (options.ShowVersion)
        {
            var version = typeof(Slirp4netnsCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
            await Console.Out.WriteLineAsync($"netwire slirp4netns version {version}\nslirp4netns command line: 1.2\n").ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        using var loggers = Logging.Create(LogLevelFromEnvironment());
        try
        {
            return await RunAsync(options, loggers).ConfigureAwait(false);
        }
        catch (WireSetupException ex)
        {
            await Console.Error.WriteLineAsync($"netwire slirp4netns: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.Setup;
        }
    }

    /// <summary>Parses the arguments as slirp4netns's getopt_long does (options and operands in any order, <c>--</c> ends options).</summary>
    public static Slirp4netnsOptions Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        var operands = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg == "--")
            {
                operands.AddRange(args.Skip(i + 1));
                break;
            }

            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var equals = arg.IndexOf('=', StringComparison.Ordinal);
                var name = equals < 0 ? arg[2..] : arg[2..equals];
                if (s_withValue.ContainsKey(name))
                {
                    values[name] = equals >= 0 ? arg[(equals + 1)..] : i + 1 < args.Count ? args[++i] : throw new FormatException($"option '--{name}' requires an argument");
                }
                else if (s_flags.ContainsKey(name) && equals < 0)
                {
                    flags.Add(name);
                }
                else
                {
                    throw new FormatException(s_flags.ContainsKey(name) ? $"option '--{name}' doesn't allow an argument" : $"unrecognized option '{arg}'");
                }
            }
            else if (arg.Length > 1 && arg[0] == '-')
            {
                for (var j = 1; j < arg.Length; j++)
                {
                    var letter = arg[j];
                    if (s_withValue.FirstOrDefault(o => o.Value == letter).Key is { } withValue)
                    {
                        values[withValue] = j + 1 < arg.Length ? arg[(j + 1)..] : i + 1 < args.Count ? args[++i] : throw new FormatException($"option requires an argument -- '{letter}'");
                        break;
                    }

                    flags.Add(s_flags.FirstOrDefault(o => o.Value == letter).Key ?? throw new FormatException($"invalid option -- '{letter}'"));
                }
            }
            else
            {
                operands.Add(arg);
            }
        }

        if (flags.Contains("help") || flags.Contains("version"))
        {
            return new Slirp4netnsOptions { ShowHelp = flags.Contains("help"), ShowVersion = flags.Contains("version") };
        }

        return Build(values, flags, operands);
    }

    private static Slirp4netnsOptions Build(Dictionary<string, string> values, HashSet<string> flags, List<string> operands)
    {
        if (operands.Count is not (1 or 2))
        {
            throw new FormatException(operands.Count == 0 ? "missing PID|PATH" : $"too many arguments: {string.Join(' ', operands)}");
        }

        if (values.TryGetValue("target-type", out var targetType) && targetType != "netns")
        {
            throw new FormatException($"--target-type={targetType}: only netns is supported");
        }

        var netnsType = values.GetValueOrDefault("netns-type", "pid");
        if (netnsType is not ("pid" or "path"))
        {
            throw new FormatException($"--netns-type={netnsType}: expected path or pid");
        }

        var target = operands[0];
        if (netnsType == "pid" && (!int.TryParse(target, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid <= 0))
        {
            throw new FormatException($"'{target}' is not a PID (give --netns-type=path for a namespace path)");
        }

        var cidr = Ipv4Cidr.Parse(values.GetValueOrDefault("cidr", "10.0.2.0/24"));
        if (cidr.PrefixLength > 25)
        {
            throw new FormatException($"--cidr={cidr}: must hold .100 (a /25 or larger)");
        }

        var mtu = ParseNumber(values.GetValueOrDefault("mtu", "1500"), "--mtu");
        var configure = flags.Contains("configure");
        var mac = values.GetValueOrDefault("macaddress");
        if (mac is not null)
        {
            if (!configure)
            {
                throw new FormatException("--macaddress is only valid with -c");
            }

            if (mac.Length != 17 || !mac.Split(':').All(part => part.Length == 2 && byte.TryParse(part, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out _)))
            {
                throw new FormatException($"--macaddress={mac}: expected six hex bytes separated by colons");
            }
        }

        var ipv6 = flags.Contains("enable-ipv6");
        if (values.ContainsKey("outbound-addr6") && !ipv6)
        {
            throw new FormatException("--outbound-addr6 needs --enable-ipv6");
        }

        var gateway = new GatewayOptions
        {
            Network = cidr,
            GatewayIp = Ip.ToAddress(cidr.Network + 2),
            DnsIp = Ip.ToAddress(cidr.Network + 3),
            DhcpStart = Ip.ToAddress(cidr.Network + 15),
            Mtu = mtu,
            Ipv6Enabled = ipv6,
            AllowHostLoopback = !flags.Contains("disable-host-loopback"),
            DnsDisabled = flags.Contains("disable-dns"),
            OutboundAddress = values.TryGetValue("outbound-addr", out var outbound) ? OutboundAddressOption.Resolve(outbound, AddressFamily.InterNetwork, "--outbound-addr") : null,
            OutboundAddress6 = values.TryGetValue("outbound-addr6", out var outbound6) ? OutboundAddressOption.Resolve(outbound6, AddressFamily.InterNetworkV6, "--outbound-addr6") : null,
        };
        gateway.Validate();
        return new Slirp4netnsOptions
        {
            Gateway = gateway,
            Configure = configure,
            ExitFd = values.TryGetValue("exit-fd", out var exitFd) ? ParseNumber(exitFd, "--exit-fd") : null,
            ReadyFd = values.TryGetValue("ready-fd", out var readyFd) ? ParseNumber(readyFd, "--ready-fd") : null,
            ApiSocket = values.GetValueOrDefault("api-socket"),
            NetnsPath = netnsType == "pid" ? $"/proc/{target}/ns/net" : target,
            UsernsPath = values.GetValueOrDefault("userns-path") ?? (netnsType == "pid" ? $"/proc/{target}/ns/user" : null),
            TapName = operands.Count == 2 ? operands[1] : "tap0",
            Mac = mac,
        };
    }

    private static int ParseNumber(string text, string option) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new FormatException($"{option}={text}: not a number");

    private static LogLevel LogLevelFromEnvironment() =>
        Enum.TryParse<LogLevel>(Environment.GetEnvironmentVariable("NETWIRE_LOG_LEVEL"), ignoreCase: true, out var level) ? level : LogLevel.Warning;

    private static async Task<int> RunAsync(Slirp4netnsOptions options, ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("NetWire.Slirp4netns");
        using var stop = new CancellationTokenSource();
        using var signals = StopSignals.CancelOnTermination(stop);
        // What the path names is taken now, before the TAP is opened: a target that exits while we
        // start (or between the Ready line and the watch) must still be seen as gone.
        var identity = NamespaceIdentity(options.NetnsPath) ?? throw new WireSetupException($"the network namespace {options.NetnsPath} does not exist");

        // setns into our own user namespace is refused, and needless: enter only another one.
        var userns = options.UsernsPath is { } path && !SameNamespace(path, "/proc/self/ns/user") ? path : null;
        var guestAddress = Ip.ToAddress(options.Gateway.Network.Network + 100);
        var configuration = options.Configure
            ? new TapConfiguration($"{guestAddress}/{options.Gateway.Network.PrefixLength}", options.Gateway.GatewayIp.ToString(), options.Gateway.Mtu, options.Mac)
            : null;
        var tap = await NamespaceTap.OpenAsync(options.NetnsPath, userns, options.TapName, configuration, [.. SelfCommand(), HelperVerb], stop.Token).ConfigureAwait(false);
        await using var tapEnd = new TapEnd("container", options.TapName, tap.Fd, FramePool.Shared, WireEnd.DefaultQueueCapacity, loggers.CreateLogger<TapEnd>());
        await using var gatewayEnd = new GatewayEnd("gateway", options.Gateway, FramePool.Shared, WireEnd.DefaultQueueCapacity, TimeProvider.System, loggers.CreateLogger<GatewayEnd>());
        if (options.Configure)
        {
            gatewayEnd.AssumeGuest(guestAddress, null, tap.Mac);
        }

        using var linkStop = new CancellationTokenSource();
        var running = new Link(tapEnd, gatewayEnd, null, loggers.CreateLogger<Link>()).RunAsync(linkStop.Token);
        Slirp4netnsApi? api = null;
        try
        {
            await WaitForForwardsAsync(gatewayEnd, running).ConfigureAwait(false);
            if (options.ApiSocket is not null)
            {
                api = new Slirp4netnsApi(options.ApiSocket, gatewayEnd, guestAddress, logger);
                api.Start();
            }

            if (options.ReadyFd is { } readyFd)
            {
                await WriteReadyAsync(readyFd).ConfigureAwait(false);
            }

            Slirp4netnsLog.Ready(logger, options.TapName, options.NetnsPath, gatewayEnd.Description);
            var exit = options.ExitFd is { } exitFd ? WaitForExitFdAsync(exitFd) : Task.Delay(Timeout.Infinite, CancellationToken.None);
            var gone = WatchNamespaceAsync(options.NetnsPath, identity, stop.Token);
            var finished = await Task.WhenAny(exit, running, gone, Task.Delay(Timeout.Infinite, stop.Token)).ConfigureAwait(false);
            Slirp4netnsLog.Stopping(logger, finished == exit ? "the exit fd closed" : finished == gone ? $"the namespace {options.NetnsPath} is gone" : finished == running ? "the TAP ended" : "signal");
        }
        finally
        {
            if (api is not null)
            {
                await api.DisposeAsync().ConfigureAwait(false);
            }

            await linkStop.CancelAsync().ConfigureAwait(false);
            try
            {
                await running.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is WireSetupException || IoErrors.IsIoFailure(ex))
            {
                // The namespace went away under the TAP: the usual end when the container stops first.
                Slirp4netnsLog.Stopping(logger, ex.Message);
            }
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// Completes when the namespace is gone: its path no longer names <paramref name="identity"/>
    /// (what <see cref="NamespaceIdentity"/> said at startup) because it was removed (<c>ip netns
    /// del</c>, Podman's cleanup), or the process of a /proc/PID/ns/net path exited (or its PID now
    /// names another namespace). The TAP's fd keeps the namespace itself alive, so its end cannot
    /// be seen on the TAP. The identity comes from the caller because a target gone before the
    /// watch starts would otherwise be taken as the one to watch, and never change.
    /// </summary>
    internal static async Task WatchNamespaceAsync(string netnsPath, string identity, CancellationToken cancellationToken)
    {
        try
        {
            while (true)
            {
                await Task.Delay(s_namespacePoll, cancellationToken).ConfigureAwait(false);
                if (NamespaceIdentity(netnsPath) != identity)
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            await Task.Delay(Timeout.Infinite, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>What the path names now: the /proc link's target (net:[INODE]), "present" for a mounted path, null when gone.</summary>
    internal static string? NamespaceIdentity(string path)
    {
        try
        {
            var file = new FileInfo(path);
            return file.LinkTarget ?? (file.Exists ? "present" : null);
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            return null;
        }
    }

    /// <summary>Waits until the gateway has started (its forward table takes requests) or the link ended.</summary>
    private static async Task WaitForForwardsAsync(GatewayEnd gateway, Task running)
    {
        for (var i = 0; i < 1000 && !running.IsCompleted; i++)
        {
            if (gateway.IsRunning)
            {
                return;
            }

            await Task.Delay(5).ConfigureAwait(false);
        }

        if (running.IsCompleted)
        {
            await running.ConfigureAwait(false);
            throw new WireSetupException("the gateway stopped while starting");
        }
    }

    /// <summary>How to start this program again: the apphost, or <c>dotnet netwire.dll</c>.</summary>
    private static string[] SelfCommand()
    {
        var process = Environment.ProcessPath ?? throw new WireSetupException("cannot tell where the netwire program is");
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? [process, Assembly.GetEntryAssembly()!.Location] : [process];
    }

    private static bool SameNamespace(string a, string b)
    {
        try
        {
            return new FileInfo(a).LinkTarget is { } left && left == new FileInfo(b).LinkTarget;
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex))
        {
            return false;
        }
    }

    private static async Task WriteReadyAsync(int fd)
    {
        try
        {
            await using var ready = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, 1);
            await ready.WriteAsync("1"u8.ToArray()).ConfigureAwait(false);
        }
        catch (Exception ex) when (IoErrors.IsFileError(ex) || ex is ArgumentException)
        {
            throw new WireSetupException($"cannot write to the ready fd {fd}: {ex.Message}", ex);
        }
    }

    /// <summary>Completes when the exit fd becomes readable, reaches end of file or fails (Podman closes its end to stop us).</summary>
    private static Task WaitForExitFdAsync(int fd) => Task.Factory.StartNew(
        () =>
        {
            try
            {
                using var exit = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, 1);
                _ = exit.ReadByte();
            }
            catch (Exception ex) when (IoErrors.IsFileError(ex) || ex is ArgumentException)
            {
            }
        },
        CancellationToken.None,
        TaskCreationOptions.LongRunning,
        TaskScheduler.Default);
}

/// <summary>The parsed command line of <c>netwire slirp4netns</c>.</summary>
internal sealed record Slirp4netnsOptions
{
    public bool ShowHelp { get; init; }

    public bool ShowVersion { get; init; }

    public GatewayOptions Gateway { get; init; } = new();

    public bool Configure { get; init; }

    public int? ExitFd { get; init; }

    public int? ReadyFd { get; init; }

    public string? ApiSocket { get; init; }

    public string NetnsPath { get; init; } = "";

    public string? UsernsPath { get; init; }

    public string TapName { get; init; } = "tap0";

    public string? Mac { get; init; }
}

/// <summary>
/// The verb's line in <c>netwire --help</c>. Program.Main runs the verb before the parser sees
/// it (slirp4netns's own getopt syntax and help), so this command's action is never reached.
/// </summary>
internal static class Slirp4netnsListing
{
    public static System.CommandLine.Command Create() => new(Slirp4netnsCommand.Verb, "Run as slirp4netns 1.2 for Podman (network_cmd_path): the TAP in a container's namespace on the user-mode gateway, rootless; see 'netwire slirp4netns --help'.");
}
