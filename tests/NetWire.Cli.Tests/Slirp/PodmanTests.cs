using System.Net;
using System.Net.Sockets;
using NetWire.Testing;

namespace NetWire.Cli.Tests.Slirp;

/// <summary>
/// Debian's Podman 4.3 with runc, rootful and rootless, with NetWire as its slirp4netns
/// (<c>network_cmd_path</c> pointing at tools/podman/slirp4netns) and, as the control, with the
/// real slirp4netns: a busybox container reaches the host's loopback at 10.0.2.2 only with
/// <c>allow_host_loopback=true</c>; <c>-p 127.0.0.1:PORT:80</c> with
/// <c>port_handler=slirp4netns</c> serves its busybox httpd to curl on the host; it has an
/// address in fd00::/64.
/// </summary>
/// <remarks>
/// The image is built from the host's static busybox by <c>podman import</c> under a name of
/// this run and removed at the end, like every container (named per run, <c>--rm</c>). runc
/// cannot raise rlimits in every sandbox, so the containers run with lowered ones (--ulimit),
/// as a container host would configure. Rootless runs as the user <c>nwpodman</c> (created
/// once with subuid/subgid ranges and kept, so parallel runs can share it), with
/// XDG_RUNTIME_DIR /run/user/UID, cgroupfs and the vfs storage driver (no systemd session, no
/// fuse needed); /dev/net/tun is made mode 0666 as Debian's udev leaves it.
/// </remarks>
[Trait("Category", "Host")]
public sealed class PodmanTests
{
    private const string User = "nwpodman";
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(180);
    private static int s_counter;

    public static TheoryData<bool, bool> Cases => new()
    {
        { false, true },
        { false, false },
        { true, true },
        { true, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Podman_Container_ReachesHostLoopbackOnlyWhenAllowed_PublishesPort_HasIpv6(bool rootless, bool netwire)
    {
        HostRequirements.RequireRoot();
        HostRequirements.RequireCommand("podman");
        HostRequirements.RequireCommand("runc");
        HostRequirements.RequireCommand("slirp4netns");
        HostRequirements.RequireCommand("curl");
        var busybox = HostRequirements.RequireCommand("busybox");
        var run = $"{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
        var directory = Directory.CreateTempSubdirectory("netwire-podman-");

        // The rootless user reads the containers.conf, the shim and the tarball in here.
        File.SetUnixFileMode(directory.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var podman = await PodmanRunner.CreateAsync(rootless, netwire, directory.FullName);
        var image = $"localhost/netwire-test-bb-{run}";
        try
        {
            await BuildImageAsync(podman, busybox, directory.FullName, image);
            using var hostServer = new TcpListener(IPAddress.Loopback, 0);
            hostServer.Start();
            var hostPort = ((IPEndPoint)hostServer.LocalEndpoint).Port;
            var serving = ServeHelloAsync(hostServer);
            var port = FreePort();

            // allow_host_loopback=true: 10.0.2.2 leads to the host's 127.0.0.1; the port is published; IPv6 is on.
            var name = $"netwire-test-{run}";
            var script = "/bin/busybox ip -o addr show tap0; " +
                LoopbackProbe(hostPort) + "; " +
                "/bin/busybox mkdir -p /www && echo hello from the container > /www/index.html && /bin/busybox httpd -p 80 -h /www && echo SERVING; /bin/busybox sleep 120";
            await using (var container = podman.Start(
                ["run", "--rm", "--name", name, "--network", "slirp4netns:allow_host_loopback=true,port_handler=slirp4netns,enable_ipv6=true", "-p", $"127.0.0.1:{port}:80", image, "/bin/busybox", "sh", "-c", script]))
            {
                try
                {
                    await container.WaitForLineAsync(l => l.Contains("SERVING", StringComparison.Ordinal), s_wait);
                    var output = string.Join('\n', container.Lines.Select(l => l.Text));
                    Assert.Contains("LOOPBACK-OK", output, StringComparison.Ordinal);
                    Assert.Contains("inet 10.0.2.100/24", output, StringComparison.Ordinal);
                    Assert.Contains("inet6 fd00::", output, StringComparison.Ordinal);
                    var curl = await ProcessRunner.RunAsync("curl", ["-sS", "--max-time", "20", $"http://127.0.0.1:{port}/"], s_wait);
                    Assert.True(curl.Succeeded, curl.Stderr);
                    Assert.Equal("hello from the container\n", curl.Stdout);
                }
                finally
                {
                    await podman.RunAsync("rm", "-f", "-t", "0", name);
                }
            }

            // Without allow_host_loopback the gateway's address does not lead to the host's loopback.
            var denied = await podman.RunAsync("run", "--rm", "--network", "slirp4netns:enable_ipv6=true", image, "/bin/busybox", "sh", "-c", LoopbackProbe(hostPort));
            Assert.Contains("LOOPBACK-REFUSED", denied.Stdout, StringComparison.Ordinal);
            hostServer.Stop();
            await serving;
        }
        finally
        {
            await podman.RunAsync("rmi", "-f", image);
            directory.Delete(recursive: true);
        }
    }

    /// <summary>A request to the host's loopback server through 10.0.2.2 (busybox nc: the static busybox's wget crashes resolving in a container without NSS libraries).</summary>
    private static string LoopbackProbe(int hostPort) =>
        $"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 10 10.0.2.2 {hostPort} | /bin/busybox grep -q '200 OK' && echo LOOPBACK-OK || echo LOOPBACK-REFUSED";

    private static async Task BuildImageAsync(PodmanRunner podman, string busybox, string directory, string image)
    {
        var root = Directory.CreateDirectory(Path.Combine(directory, "rootfs"));
        Directory.CreateDirectory(Path.Combine(root.FullName, "bin"));
        File.Copy(busybox, Path.Combine(root.FullName, "bin", "busybox"));
        File.CreateSymbolicLink(Path.Combine(root.FullName, "bin", "sh"), "busybox");
        var tarball = Path.Combine(directory, "bb.tar");
        (await ProcessRunner.RunAsync("tar", ["-C", root.FullName, "-cf", tarball, "."])).EnsureSuccess();
        File.SetUnixFileMode(tarball, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        (await podman.RunAsync("import", tarball, image)).EnsureSuccess();
    }

    private static async Task ServeHelloAsync(TcpListener listener)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync();
                var stream = client.GetStream();
                var buffer = new byte[4096];
                _ = await stream.ReadAsync(buffer);
                await stream.WriteAsync("HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nhello\n"u8.ToArray());
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Runs podman rootful or as the rootless test user, with NetWire or slirp4netns as the network command.</summary>
    private sealed class PodmanRunner
    {
        private readonly bool _rootless;
        private readonly Dictionary<string, string?> _environment;

        private PodmanRunner(bool rootless, Dictionary<string, string?> environment)
        {
            _rootless = rootless;
            _environment = environment;
        }

        public static async Task<PodmanRunner> CreateAsync(bool rootless, bool netwire, string directory)
        {
            // The shim runs the netwire.dll this build produced; an empty file is Podman's defaults (the real slirp4netns).
            var conf = Path.Combine(directory, "containers.conf");
            var shim = Path.Combine(directory, "slirp4netns");
            await File.WriteAllTextAsync(shim, $"#!/bin/sh\nNETWIRE=\"dotnet {RepoPaths.NetwireDll}\" exec {Path.Combine(RepoPaths.Root, "tools", "podman", "slirp4netns")} \"$@\"\n");
            File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            await File.WriteAllTextAsync(conf, netwire ? $"[engine]\nnetwork_cmd_path = \"{shim}\"\n" : "");
            File.SetUnixFileMode(conf, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var environment = new Dictionary<string, string?> { ["CONTAINERS_CONF"] = conf };
            if (rootless)
            {
                await EnsureUserAsync();
                var uid = (await ProcessRunner.RunAsync("id", ["-u", User])).EnsureSuccess().Stdout.Trim();
                var runtimeDir = $"/run/user/{uid}";
                if (!Directory.Exists(runtimeDir))
                {
                    Directory.CreateDirectory(runtimeDir);
                    (await ProcessRunner.RunAsync("chown", [$"{User}:", runtimeDir])).EnsureSuccess();
                    File.SetUnixFileMode(runtimeDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                }

                environment["XDG_RUNTIME_DIR"] = runtimeDir;
                environment["HOME"] = $"/home/{User}";
            }

            return new PodmanRunner(rootless, environment);
        }

        public Task<ProcessResult> RunAsync(params string[] args)
        {
            var (file, all) = CommandLine(args);
            return ProcessRunner.RunAsync(file, all, s_wait);
        }

        public ManagedProcess Start(string[] args)
        {
            var (file, all) = CommandLine(args);
            return ProcessRunner.Start(file, all);
        }

        private static async Task EnsureUserAsync()
        {
            if (!(await ProcessRunner.RunAsync("id", ["-u", User])).Succeeded)
            {
                // Debian's useradd gives the new user subuid and subgid ranges.
                var add = await ProcessRunner.RunAsync("useradd", ["-m", "-s", "/bin/sh", User]);
                if (!add.Succeeded && !add.Stderr.Contains("already exists", StringComparison.Ordinal))
                {
                    add.EnsureSuccess();
                }
            }

            var mode = File.GetUnixFileMode("/dev/net/tun");
            const UnixFileMode All = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;
            if ((mode & All) != All)
            {
                File.SetUnixFileMode("/dev/net/tun", mode | All);
            }
        }

        private (string File, string[] Args) CommandLine(string[] args)
        {
            string[] common = ["--runtime", "runc", .. _rootless ? (string[])["--cgroup-manager=cgroupfs", "--events-backend=file", "--storage-driver=vfs"] : []];
            string[] podman = args[0] == "run"
                ? ["podman", .. common, "run", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000", .. args[1..]]
                : ["podman", .. common, .. args];
            string[] withEnvironment = ["env", .. _environment.Select(e => $"{e.Key}={e.Value}"), .. podman];
            return _rootless ? ("runuser", ["-u", User, "--", .. withEnvironment]) : ("env", withEnvironment[1..]);
        }
    }
}
