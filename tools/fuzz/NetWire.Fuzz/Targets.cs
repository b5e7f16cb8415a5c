using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Control.Qmp;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Core.Wire;
using NetWire.Devices.Pcap;
using NetWire.Devices.Qemu;
using NetWire.Spice;
using NetWire.Spice.Channels.Main;
using NetWire.Spice.Link;
using NetWire.Stack;
using NetWire.Tunnel;

namespace NetWire.Fuzz;

/// <summary>
/// The fuzz targets: each takes one input and runs it through the real code a peer's bytes
/// reach. Only failures NetWire documents for bad input are caught here (a refused state stream,
/// a bad capture record, a client that went away); anything else escapes and is a finding.
/// </summary>
/// <remarks>
/// Nothing here reaches beyond this machine: the gateway target denies every destination
/// (<c>--deny 0.0.0.0/0 --deny ::/0</c>, no host loopback) and sends DNS to 127.0.0.1:9; the
/// QMP target's table has no <c>migrate</c>. Inputs whose first byte picks a variant (header
/// form, chunking) say so below.
/// </remarks>
internal static class Targets
{
    /// <summary>Every target by name, as run.sh and the corpus folders name them.</summary>
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["framing"] = Framing,
        ["gateway"] = Gateway,
        ["pcap"] = Pcap,
        ["spice-link"] = SpiceLink,
        ["spice-main"] = SpiceMain,
        ["spice-tunnel"] = SpiceTunnel,
        ["qmp"] = Qmp,
        ["state"] = State,
    };

    /// <summary>The file the gateway target's TFTP server holds (three blocks of the default size and a bit).</summary>
    public const string TftpFile = "boot.ipxe";

    private static readonly Lazy<string> s_tftpRoot = new(() =>
    {
        // Beside the harness (run.sh's work folder, removed with it), not in /tmp: afl-fuzz ends
        // its target with SIGKILL, so nothing the process would remove at exit is removed.
        var root = Path.Combine(AppContext.BaseDirectory, "fuzz-tftp");
        var file = Path.Combine(root, TftpFile);
        byte[] content = [.. Encoding.ASCII.GetBytes("#!ipxe\n"), .. new byte[1600]];
        if (!File.Exists(file) || new FileInfo(file).Length != content.Length)
        {
            Directory.CreateDirectory(root);
            var partial = file + "." + Environment.ProcessId;
            File.WriteAllBytes(partial, content);
            File.Move(partial, file, overwrite: true);
        }

        return root;
    });

    private static readonly Lazy<Socket> s_pairListener = new(() =>
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint("\0netwire-fuzz-" + Environment.ProcessId));
        listener.Listen(4);
        return listener;
    });

    private static readonly Lazy<(TicketAuthority Tickets, RsaKeyPool Keys)> s_link = new(() =>
    {
        var tickets = new TicketAuthority(TimeProvider.System);
        tickets.SetPassword("s3cret");
        return (tickets, new RsaKeyPool());
    });

    private static readonly Lazy<GatewayEnd> s_gateway = new(() =>
        new GatewayEnd("fuzz", new GatewayOptions { AllowHostLoopback = true }, FramePool.Shared, 256, TimeProvider.System, NullLogger<GatewayEnd>.Instance));

    private static readonly Lazy<SpiceServer> s_spice = new(() =>
        new SpiceServer(new SpiceServerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), PingInterval = TimeSpan.Zero }, s_link.Value.Tickets, NullLoggerFactory.Instance));

    /// <summary>
    /// The QEMU stream framing (4-byte big-endian length, then the frame) as QemuStreamEnd's
    /// receive loop parses it from a connected socket; the input is what the guest sends.
    /// </summary>
    private static void Framing(byte[] input)
    {
        var end = new QemuStreamEnd("fuzz", new UnixDomainSocketEndPoint("\0netwire-fuzz-unused"), false, FramePool.Shared, 256, NullLogger.Instance);
        var (ours, theirs) = SocketPair();
        using (ours)
        using (theirs)
        {
            var sender = Task.Run(() =>
            {
                theirs.Send(input);
                theirs.Shutdown(SocketShutdown.Send);
            });
            _ = end.ReceiveLoopAsync(ours, new Discard(), CancellationToken.None).GetAwaiter().GetResult();
            sender.GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// The user-mode gateway's input path: the input is a sequence of frames from the guest, each
    /// a 2-byte big-endian length then the frame (Ethernet: ARP, IPv4, IPv6 with its extension
    /// headers, TCP, UDP, ICMP, ICMPv6 with neighbour discovery, DHCP, DHCPv6, DNS and whatever
    /// the gateway serves), fed as one batch. Every destination of either family is denied.
    /// </summary>
    private static void Gateway(byte[] input)
    {
        var options = new GatewayOptions
        {
            DnsUpstream = new IPEndPoint(IPAddress.Loopback, 9),
            TftpRoot = s_tftpRoot.Value,
            BootFile = TftpFile,
            DomainName = "fuzz.example",
            DnsSearch = ["fuzz.example", "example"],
            Hostname = "guest",
            Policy = new NetWire.Stack.Nat.OutboundPolicy([], [NetWire.Core.Net.IpNetwork.Parse("0.0.0.0/0"), NetWire.Core.Net.IpNetwork.Parse("::/0")]),
        };
        using var stop = new CancellationTokenSource();
        var gateway = new NetWire.Stack.Gateway(options, FramePool.Shared, TimeProvider.System, NullLogger.Instance);
        gateway.Attach(new Discard(), new WireCounters(), stop.Token);
        lock (gateway.Sync)
        {
            var rest = input.AsSpan();
            while (rest.Length >= 2)
            {
                var length = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(rest), rest.Length - 2);
                gateway.OnGuestFrame(rest.Slice(2, length));
                rest = rest[(2 + length)..];
            }

            gateway.EndOfBatch();
        }

        stop.Cancel();
        lock (gateway.Sync)
        {
            gateway.Shutdown();
        }
    }

    /// <summary>The pcap and pcapng reader: every record of the input, as replay and inspect read them.</summary>
    private static void Pcap(byte[] input)
    {
        try
        {
            using var reader = CaptureFileReader.Open("fuzz.pcap", new MemoryStream(input, writable: false));
            while (reader.TryReadNext(out _))
            {
                _ = reader.Data.Length;
            }
        }
        catch (CaptureFormatException)
        {
            // Documented: a bad header or record is reported, with where it is.
        }
    }

    /// <summary>The SPICE link stage as the server runs it: link header, SpiceLinkMess, auth mechanism, ticket.</summary>
    private static void SpiceLink(byte[] input)
    {
        var (tickets, keys) = s_link.Value;
        try
        {
            _ = LinkHandshake.RunAsync(new FuzzStream(input), tickets, keys, static _ => [], null, null, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (EndOfStreamException)
        {
            // Documented: the client went away mid-link.
        }
    }

    /// <summary>
    /// The main channel after a successful link: the input is the client's messages. The first
    /// byte's low bit picks the mini header (spice-gtk) or the full header.
    /// </summary>
    private static void SpiceMain(byte[] input)
    {
        if (input.Length == 0)
        {
            return;
        }

        var mini = (input[0] & 1) != 0;
        var mess = new SpiceLinkMess(0, (byte)SpiceChannelType.Main, 0, [mini ? 0x0Du : 0x05u], [0x0Fu]);
        using var session = new SpiceSession(1, mess, new FuzzStream(input[1..]), s_spice.Value.Options, static () => [], NullLogger<SpiceSession>.Instance);
        RunBounded(session.RunAsync);
    }

    /// <summary>
    /// The tunnel channel's server side after its link: the input is the tunnel client's
    /// messages. The first byte's low bit picks the mini header.
    /// </summary>
    private static void SpiceTunnel(byte[] input)
    {
        if (input.Length == 0)
        {
            return;
        }

        var gateway = new TunnelGateway(new GatewayOptions(), static () => null, new TunnelOptions());
        var session = new TunnelSession(1, 1, new FuzzStream(input[1..]), (input[0] & 1) != 0, gateway, NullLogger.Instance);
        RunBounded(session.RunAsync);
    }

    /// <summary>The control socket's session: the input is what a QMP client sends (greeting, capabilities, commands).</summary>
    private static void Qmp(byte[] input)
    {
        var table = new QmpCommandTable();
        NetWire.Control.Commands.SpiceCommands.Add(table, s_spice.Value, TimeProvider.System);
        NetWire.Control.Commands.WireCommands.Add(table, static () => []);
        var session = new QmpSession(1, new FuzzStream(input), table, new QmpServerOptions(), NullLogger.Instance);
        RunBounded(async token => await session.RunAsync(token).ConfigureAwait(false));
    }

    /// <summary>
    /// The migration state stream as a target reads and adopts it, with the appliance's real
    /// sections registered (gateway.flows with a gateway, so its checks of hostile flows run, and tunnel.sockets). The harness rewrites the trailing SHA-256 over the input first, so
    /// mutations reach the sections instead of dying at the checksum.
    /// </summary>
    private static void State(byte[] input)
    {
        var bytes = (byte[])input.Clone();
        if (bytes.Length > StateStream.HeaderLength + StateStream.ChecksumLength)
        {
            var body = bytes.Length - StateStream.ChecksumLength;
            SHA256.HashData(bytes.AsSpan(0, body), bytes.AsSpan(body));
        }

        var registry = new StateRegistry();
        registry.Register(new NetWire.Stack.Dhcp.DhcpStateSection(static () => null));
        registry.Register(new NetWire.Appliance.WireStateSection(static () => [], NullLogger.Instance));
        registry.Register(new NetWire.Spice.Migration.SpiceStateSection(s_spice.Value));
        var flows = new NetWire.Stack.Migration.GatewayFlowSection(static () => s_gateway.Value, NullLogger.Instance);
        var tunnel = new NetWire.Tunnel.TunnelGateway(new NetWire.Stack.GatewayOptions(), static () => null, new NetWire.Tunnel.TunnelOptions());
        registry.Register(new NetWire.Tunnel.TunnelStateSection(tunnel, static () => null, flows, NullLogger.Instance));
        registry.Register(flows);
        try
        {
            var document = StateStream.Parse(bytes);
            var plan = registry.Prepare(document);
            if (!plan.HasHandover)
            {
                // A stream with gateway flows stops at its checks: applying it restores real sockets.
                plan.Apply();
            }
        }
        catch (StateFormatException)
        {
            // Documented: a refused stream says why and applies nothing.
        }
    }

    /// <summary>Runs a connection's loop to its end; one that outlives 10 s is a hang (afl's -t is shorter).</summary>
    private static void RunBounded(Func<CancellationToken, Task> run)
    {
        using var guard = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        run(guard.Token).GetAwaiter().GetResult();
        if (guard.IsCancellationRequested)
        {
            throw new TimeoutException("the connection did not end at the end of its input");
        }
    }

    private static (Socket Ours, Socket Theirs) SocketPair()
    {
        var listener = s_pairListener.Value;
        var theirs = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        theirs.Connect(listener.LocalEndPoint!);
        return (listener.Accept(), theirs);
    }

    /// <summary>A receiver that always has room and returns every frame to the pool.</summary>
    private sealed class Discard : IPacketReceiver
    {
        public bool CanRecvPacket => true;

        public ValueTask WaitCanRecvPacketAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public void RecvPacket(Frame frame) => frame.Dispose();
    }
}
