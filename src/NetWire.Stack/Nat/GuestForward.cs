using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using NetWire.Core.Net;

namespace NetWire.Stack.Nat;

/// <summary>
/// A guest forward (QEMU's <c>guestfwd</c>): guest TCP connections to <see cref="Address"/>:<see cref="Port"/>
/// on the guest network go to a host socket (<c>tcp:ADDR:PORT-HOST:HPORT</c>) or to the standard
/// input and output of a new <see cref="Command"/> (<c>tcp:ADDR:PORT-cmd:COMMAND</c>).
/// </summary>
/// <remarks>
/// The gateway answers ARP for the address and terminates the guest's connection with its TCP
/// endpoint like any other; only the far side differs. Unlike QEMU, whose chardev is one
/// connection made at start, every guest connection gets its own host connection (refused:
/// the guest gets a RST) or its own process (<c>/bin/sh -c COMMAND</c>, as libslirp runs a
/// guestfwd command per connection). The process's standard error is NetWire's. Guest forwards
/// stay reachable under <c>--restrict</c>.
/// </remarks>
public sealed record GuestForward(IPAddress Address, ushort Port, string? Host, ushort HostPort, string? Command)
{
    /// <summary>The forms <see cref="Parse"/> accepts.</summary>
    public const string Forms = "tcp:ADDR:PORT-HOST:HPORT | tcp:ADDR:PORT-cmd:COMMAND";

    private static int s_pairs;

    /// <summary>Parses a guest forward; throws <see cref="FormatException"/>.</summary>
    public static GuestForward Parse(string text)
    {
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        var parts = dash < 0 ? [] : text[..dash].Split(':');
        if (parts.Length != 3 || parts[0] != "tcp")
        {
            throw new FormatException($"bad guest forward '{text}': expected {Forms}");
        }

        if (!IPAddress.TryParse(parts[1], out var address) || address.AddressFamily != AddressFamily.InterNetwork)
        {
            throw new FormatException($"bad guest forward '{text}': '{parts[1]}' is not an IPv4 address");
        }

        var port = ParsePort(parts[2], text);
        var target = text[(dash + 1)..];
        if (target.StartsWith("cmd:", StringComparison.Ordinal))
        {
            var command = target[4..];
            return string.IsNullOrWhiteSpace(command)
                ? throw new FormatException($"bad guest forward '{text}': the command is empty")
                : new GuestForward(address, port, null, 0, command);
        }

        if (target.StartsWith("tcp:", StringComparison.Ordinal))
        {
            target = target[4..];
        }

        var colon = target.LastIndexOf(':');
        if (colon <= 0)
        {
            throw new FormatException($"bad guest forward '{text}': expected {Forms}");
        }

        var host = target[..colon].Trim('[', ']');
        return new GuestForward(address, port, host, ParsePort(target[(colon + 1)..], text), null);
    }

    /// <summary>
    /// The far side of one guest connection: a connected host socket, or one end of a socket pair
    /// whose other end is relayed to a new process. Faults with a <see cref="SocketException"/>
    /// when the host refuses or the command cannot start (the guest then gets a RST).
    /// </summary>
    public async Task<Socket> ConnectAsync(CancellationToken cancellationToken)
    {
        if (Command is null)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(Host!, HostPort, cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        Process process;
        try
        {
            var start = new ProcessStartInfo("/bin/sh")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            start.ArgumentList.Add("-c");
            start.ArgumentList.Add(Command);
            process = Process.Start(start) ?? throw new SocketException((int)SocketError.ConnectionRefused);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new SocketException((int)SocketError.ConnectionRefused);
        }

        var (gatewaySide, processSide) = await SocketPairAsync(cancellationToken).ConfigureAwait(false);
        _ = RelayAsync(process, processSide, cancellationToken);
        return gatewaySide;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"tcp:{Address}:{Port}-" + (Command is null ? $"{Host}:{HostPort}" : $"cmd:{Command}");

    /// <summary>Two connected unix stream sockets, through a listener in the abstract namespace that lives only for the connect.</summary>
    private static async Task<(Socket, Socket)> SocketPairAsync(CancellationToken cancellationToken)
    {
        var endPoint = new UnixDomainSocketEndPoint($"\0netwire-guestfwd-{Environment.ProcessId}-{Interlocked.Increment(ref s_pairs)}");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(endPoint);
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            var accept = listener.AcceptAsync(cancellationToken).AsTask();
            await client.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            return (client, await accept.ConfigureAwait(false));
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the socket to the process's standard input (closed at the guest's FIN) and its
    /// standard output to the socket (a FIN to the guest at its end); ends the process when both
    /// directions are done or the gateway stops.
    /// </summary>
    private static async Task RelayAsync(Process process, Socket socket, CancellationToken cancellationToken)
    {
        using (process)
        using (socket)
        {
            var toProcess = CopyToProcessAsync(socket, process, cancellationToken);
            var fromProcess = CopyFromProcessAsync(process, socket, cancellationToken);
            try
            {
                await Task.WhenAll(toProcess, fromProcess).ConfigureAwait(false);
            }
            catch (Exception ex) when (IoErrors.IsIoFailure(ex) || ex is OperationCanceledException)
            {
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
            }
        }
    }

    private static async Task CopyToProcessAsync(Socket socket, Process process, CancellationToken cancellationToken)
    {
        var stdin = process.StandardInput.BaseStream;
        var buffer = new byte[16384];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false)) > 0)
            {
                await stdin.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                await stdin.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            process.StandardInput.Close();
        }
    }

    private static async Task CopyFromProcessAsync(Process process, Socket socket, CancellationToken cancellationToken)
    {
        var stdout = process.StandardOutput.BaseStream;
        var buffer = new byte[16384];
        int read;
        while ((read = await stdout.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            await socket.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }

        socket.Shutdown(SocketShutdown.Send);
    }

    private static ushort ParsePort(string text, string whole)
    {
        if (!ushort.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port == 0)
        {
            throw new FormatException($"bad guest forward '{whole}': '{text}' is not a port (1-65535)");
        }

        return port;
    }
}
