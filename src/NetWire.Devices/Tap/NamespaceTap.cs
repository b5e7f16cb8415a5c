using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using NetWire.Core.Wire;
using NetWire.Devices.Interop;

namespace NetWire.Devices.Tap;

/// <summary>How the helper sets up the TAP inside the namespace (slirp4netns's <c>--configure</c>).</summary>
/// <param name="Address">The interface's IPv4 address with its prefix length (<c>10.0.2.100/24</c>).</param>
/// <param name="Gateway">The default route's next hop (<c>10.0.2.2</c>).</param>
/// <param name="Mtu">The interface's MTU.</param>
/// <param name="Mac">A MAC address to set (<c>aa:bb:cc:dd:ee:ff</c>), or null for the kernel's random one.</param>
public sealed record TapConfiguration(string Address, string Gateway, int Mtu, string? Mac);

/// <summary>A TAP opened in another namespace: its fd (ours now) and its MAC address.</summary>
public sealed record NamespaceTapHandle(int Fd, byte[] Mac);

/// <summary>
/// Opens a TAP inside another process's network namespace, entering its user namespace too when
/// given one, and hands the fd to this process, as slirp4netns does with its child: nothing needs
/// root when the namespaces belong to the caller (rootless Podman).
/// </summary>
/// <remarks>
/// <para>
/// Why a helper process: joining a user namespace with setns(2) is refused to a multithreaded
/// process (EINVAL), and a .NET process always has several threads; joining the network namespace
/// of a namespace we do not own needs the capabilities that only membership of its user namespace
/// gives. So the namespaces are entered by <c>nsenter</c> (util-linux, a single-threaded C program
/// present wherever Podman is), which then executes the helper (<c>netwire</c> itself, in its
/// hidden helper verb). By then every setns is done: the helper starts life inside the
/// namespaces, as uid 0 of the user namespace with its full capabilities there, and never calls
/// setns, so its threads do not matter. No compiler and no setuid binary are involved.
/// </para>
/// <para>
/// The helper opens the TAP (creating it in the container's namespace), configures it with
/// <c>ip</c> when asked, reads its MAC, connects to a unix socket this process listens on in a
/// private temporary directory, and sends the fd in an SCM_RIGHTS control message with the MAC
/// as the payload; then it exits. The TAP lives as long as an fd to it is open, so from then on
/// it belongs to this process; it disappears with the namespace.
/// </para>
/// </remarks>
public static class NamespaceTap
{
    /// <summary>How long the helper may take to start, open the TAP and send it (a .NET start on a busy machine).</summary>
    public static readonly TimeSpan HelperTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Runs <paramref name="helper"/> (the command that starts the helper verb, followed by
    /// <see cref="HelperArguments"/>) inside the namespaces and returns the TAP it sends.
    /// Throws <see cref="WireSetupException"/> with the helper's own error when it fails.
    /// </summary>
    public static async Task<NamespaceTapHandle> OpenAsync(string netnsPath, string? usernsPath, string tapName, TapConfiguration? configuration, IReadOnlyList<string> helper, CancellationToken cancellationToken)
    {
        TunTap.ValidateName(tapName);
        var directory = Directory.CreateTempSubdirectory("netwire-tap-");
        try
        {
            var socketPath = Path.Combine(directory.FullName, "fd.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            listener.Listen(1);

            var start = new ProcessStartInfo("nsenter") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            start.ArgumentList.Add($"--net={netnsPath}");
            if (usernsPath is not null)
            {
                // nsenter sets uid and gid 0 in the user namespace, so the helper has its capabilities.
                start.ArgumentList.Add($"--user={usernsPath}");
            }

            start.ArgumentList.Add("--");
            foreach (var arg in helper.Concat(HelperArguments(socketPath, tapName, configuration)))
            {
                start.ArgumentList.Add(arg);
            }

            start.Environment["DOTNET_EnableDiagnostics"] = "0";
            Process process;
            try
            {
                process = Process.Start(start) ?? throw new WireSetupException("cannot start nsenter");
            }
            catch (Win32Exception ex)
            {
                throw new WireSetupException($"cannot start nsenter (util-linux): {ex.Message}", ex);
            }

            using (process)
            {
                var errors = process.StandardError.ReadToEndAsync(CancellationToken.None);
                _ = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(HelperTimeout);
                var accept = listener.AcceptAsync(timeout.Token).AsTask();
                var exited = process.WaitForExitAsync(CancellationToken.None);
                try
                {
                    if (await Task.WhenAny(accept, exited).ConfigureAwait(false) == exited && !accept.IsCompleted)
                    {
                        throw new WireSetupException(HelperFailure(tapName, process.ExitCode, await errors.ConfigureAwait(false)));
                    }

                    using var connection = await accept.ConfigureAwait(false);
                    var handle = await ReceiveAsync(connection, timeout.Token).ConfigureAwait(false);
                    await exited.ConfigureAwait(false);
                    return handle;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new WireSetupException($"the TAP helper did not send {tapName} within {HelperTimeout.TotalSeconds:0} s");
                }
                finally
                {
                    if (!process.HasExited)
                    {
                        process.Kill();
                    }

                    listener.Dispose();
                    try
                    {
                        await accept.ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                    {
                    }
                }
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>The helper verb's arguments: SOCKET TAPNAME [ADDRESS/PREFIX GATEWAY MTU [MAC]].</summary>
    public static IEnumerable<string> HelperArguments(string socketPath, string tapName, TapConfiguration? configuration)
    {
        yield return socketPath;
        yield return tapName;
        if (configuration is not null)
        {
            yield return configuration.Address;
            yield return configuration.Gateway;
            yield return configuration.Mtu.ToString(CultureInfo.InvariantCulture);
            if (configuration.Mac is not null)
            {
                yield return configuration.Mac;
            }
        }
    }

    /// <summary>
    /// The helper itself, already inside the namespaces: opens (and configures) the TAP, sends the
    /// fd to <paramref name="socketPath"/>; returns the process exit code, with the error on stderr.
    /// </summary>
    public static int RunHelper(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count is not (2 or 5 or 6))
        {
            Console.Error.WriteLine("usage: SOCKET TAPNAME [ADDRESS/PREFIX GATEWAY MTU [MAC]]");
            return 2;
        }

        var tapName = args[1];
        int fd;
        try
        {
            fd = TunTap.Open(tapName);
            if (args.Count > 2)
            {
                Configure(tapName, args);
            }

            var mac = TunTap.ReadMac(tapName);
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Connect(new UnixDomainSocketEndPoint(args[0]));
            Send(socket, fd, mac);
        }
        catch (Exception ex) when (ex is WireSetupException or SocketException or IOException or Win32Exception)
        {
            Console.Error.WriteLine(ex.Message);
            return 1;
        }

        return 0;
    }

    private static void Configure(string tapName, IReadOnlyList<string> args)
    {
        string[] link = args.Count == 6 ? ["link", "set", tapName, "address", args[5], "mtu", args[4], "up"] : ["link", "set", tapName, "mtu", args[4], "up"];
        RunIp(link);
        RunIp("link", "set", "lo", "up");
        RunIp("addr", "add", args[2], "dev", tapName);
        RunIp("route", "add", "default", "via", args[3], "dev", tapName);
    }

    private static void RunIp(params string[] args)
    {
        var start = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new WireSetupException("cannot start ip");
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new WireSetupException($"ip {string.Join(' ', args)} failed: {error.Trim()}");
        }
    }

    private static string HelperFailure(string tapName, int exitCode, string errors)
    {
        var text = errors.Trim();
        return text.Length == 0
            ? $"the TAP helper for {tapName} exited with status {exitCode} without sending it"
            : $"cannot open {tapName} in the namespace: {text.Replace('\n', ' ')}";
    }

    private static unsafe void Send(Socket socket, int fd, byte[] mac)
    {
        fixed (byte* payload = mac)
        {
            var iov = new Libc.IoVec { Base = payload, Length = (nuint)mac.Length };
            var control = new Libc.FdControlMessage { Length = Libc.FdControlMessageLength, Level = Libc.SolSocket, Type = Libc.ScmRights, Fd = fd };
            var message = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.FdControlMessage) };
            if (Libc.SendMsg(socket.Handle, &message, 0) < 0)
            {
                throw new WireSetupException($"cannot send the TAP's fd: {Libc.Describe(Marshal.GetLastPInvokeError())}");
            }
        }
    }

    private static async Task<NamespaceTapHandle> ReceiveAsync(Socket connection, CancellationToken cancellationToken)
    {
        const int MsgDontWait = 0x40;
        var mac = new byte[6];
        while (true)
        {
            // A zero-byte receive waits until the message is there without taking it.
            await connection.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            var (received, fd) = ReceiveOnce(connection, mac, Libc.MsgCmsgCloExec | MsgDontWait);
            if (received < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno is Libc.EAgain or Libc.EIntr)
                {
                    continue;
                }

                throw new WireSetupException($"cannot receive the TAP's fd: {Libc.Describe(errno)}");
            }

            if (fd < 0 || received != mac.Length)
            {
                if (fd >= 0)
                {
                    Libc.Close(fd);
                }

                throw new WireSetupException("the TAP helper closed its connection without sending the TAP");
            }

            return new NamespaceTapHandle(fd, mac);
        }
    }

    private static unsafe (nint Received, int Fd) ReceiveOnce(Socket connection, byte[] mac, int flags)
    {
        fixed (byte* payload = mac)
        {
            var iov = new Libc.IoVec { Base = payload, Length = (nuint)mac.Length };
            var control = default(Libc.FdControlMessage);
            var message = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = &control, ControlLength = (nuint)sizeof(Libc.FdControlMessage) };
            var received = Libc.RecvMsg(connection.Handle, &message, flags);
            var fd = received >= 0 && message.ControlLength >= Libc.FdControlMessageLength && control.Level == Libc.SolSocket && control.Type == Libc.ScmRights ? control.Fd : -1;
            return (received, fd);
        }
    }
}
