using System.Net.NetworkInformation;
using System.Net.Sockets;
using SharpPcap;
using SharpPcap.Tunneling;

namespace NetWire.Bench;

/// <summary>
/// The load loops. Each runs on its own thread until the <see cref="StopFlag"/> is set and
/// allocates nothing per frame, so the generator's own garbage never competes with what is measured.
/// </summary>
internal static unsafe class Loads
{
    /// <summary>Bytes per send on the guest stream socket (netwire reads 256 KiB at a time).</summary>
    public const int StreamBatchBytes = 256 * 1024;

    /// <summary>How long the raw TAP reader retries an empty queue before it sleeps.</summary>
    public const long SpinMicroseconds = 50;

    /// <summary>Bytes per receive on the guest stream socket.</summary>
    private const int StreamReadBytes = 1024 * 1024;

    /// <summary>Starts <paramref name="loop"/> on a background thread.</summary>
    public static Thread Start(string name, Action loop)
    {
        var thread = new Thread(() =>
        {
            try
            {
                loop();
            }
            catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
            {
                Console.Error.WriteLine($"netwire-bench: {name} stopped: {ex.Message}");
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return thread;
    }

    /// <summary>Connects to a unix stream socket, retrying until it exists and accepts.</summary>
    public static Socket ConnectUnix(string path, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(path));
                return socket;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                socket.Dispose();
                Thread.Sleep(50);
            }
        }
    }

    /// <summary>Guest side, sending: writes batches of length-prefixed frames as fast as the socket takes them.</summary>
    public static void StreamWriter(Socket socket, byte[] batch, StopFlag stop)
    {
        while (!stop.IsSet)
        {
            socket.Send(batch);
        }
    }

    /// <summary>
    /// Guest side, receiving: reads the socket and counts frames (all are <paramref name="frameLength"/>
    /// bytes, so the count is bytes over the stride), reporting each read to <paramref name="window"/>.
    /// </summary>
    public static void StreamReader(Socket socket, int frameLength, FlowWindow window, StopFlag stop)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(StreamReadBytes);
        var stride = 4 + frameLength;
        long bytes = 0, counted = 0;
        while (!stop.IsSet)
        {
            var n = socket.Receive(buffer);
            if (n == 0)
            {
                return;
            }

            bytes += n;
            var frames = bytes / stride;
            window.Add(frames - counted);
            counted = frames;
        }
    }

    /// <summary>The raw ceiling, towards the host: one write(2) per frame on a blocking TAP fd.</summary>
    public static void TapWriter(TapFd tap, byte[] frame, StopFlag stop)
    {
        fixed (byte* data = frame)
        {
            while (!stop.IsSet)
            {
                for (var i = 0; i < 64; i++)
                {
                    if (Native.Write(tap.Fd, data, frame.Length) < 0)
                    {
                        throw Native.Failure("write to TAP");
                    }
                }
            }
        }
    }

    /// <summary>
    /// The raw ceiling, towards the guest: one read(2) per frame on a non-blocking TAP fd. When the
    /// queue is empty it keeps trying for <see cref="SpinMicroseconds"/> before it sleeps in poll(2),
    /// so a sender that is about as fast as the reader does not pay a wakeup for every frame.
    /// </summary>
    public static void TapReader(TapFd tap, FlowWindow window, StopFlag stop)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(65_600, pinned: true);
        var pollFd = new Native.PollFd { Fd = tap.Fd, Events = Native.PollIn };
        var spinTicks = System.Diagnostics.Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
        long pending = 0;
        long idleSince = 0;
        fixed (byte* data = buffer)
        {
            while (!stop.IsSet)
            {
                var n = Native.Read(tap.Fd, data, buffer.Length);
                if (n > 0)
                {
                    idleSince = 0;
                    if (++pending == 64)
                    {
                        window.Add(pending);
                        pending = 0;
                    }

                    continue;
                }

                window.Add(pending);
                pending = 0;
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (idleSince == 0)
                {
                    idleSince = now;
                }

                if (now - idleSince < spinTicks)
                {
                    continue;
                }

                Native.Poll(&pollFd, 1, 100);
                idleSince = 0;
            }
        }
    }

    /// <summary>Opens SharpPcap's TunnelDevice on an existing TAP.</summary>
    public static TunnelDevice OpenTunnelDevice(string ifName)
    {
        NetworkInterface? nic = null;
        foreach (var candidate in NetworkInterface.GetAllNetworkInterfaces())
        {
            if (candidate.Name == ifName)
            {
                nic = candidate;
            }
        }

        if (nic is null)
        {
            throw new IOException($"no interface {ifName}");
        }

        var device = new TunnelDevice(nic, new IPAddressConfiguration());
        device.Open(new DeviceConfiguration());
        return device;
    }

    /// <summary>SharpPcap, towards the host: SendPacket per frame.</summary>
    public static void TunnelWriter(TunnelDevice device, byte[] frame, StopFlag stop)
    {
        while (!stop.IsSet)
        {
            for (var i = 0; i < 64; i++)
            {
                device.SendPacket(frame);
            }
        }
    }
}
