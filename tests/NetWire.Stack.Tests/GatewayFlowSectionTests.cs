using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;
using NetWire.Stack.Tcp;

namespace NetWire.Stack.Tests;

/// <summary>
/// The <c>gateway.flows</c> section on a target: a flow a gateway could have written is taken;
/// hostile ones (docs/migration.md, "Hostile flow sections") refuse the whole stream with a
/// reason, before anything is applied.
/// </summary>
public sealed class GatewayFlowSectionTests
{
    private static readonly IpAddr s_guest = IpAddr.FromIpv4(0x0A00020F);   // 10.0.2.15
    private static readonly IpAddr s_gateway = IpAddr.FromIpv4(0x0A000202); // 10.0.2.2

    private static readonly TcpFlowState s_flow = new()
    {
        Key = new FlowKey(s_guest, 40000, s_gateway, 8080),
        Origin = TcpFlowOrigin.Nat,
        Iss = 900,
        SndUna = 1000,
        SndNxt = 1004,
        SndMax = 1004,
        SndWnd = 65535,
        SendShift = 7,
        ReceiveShift = 7,
        Mss = 1460,
        RcvNxt = 5000,
        RtoMs = 200,
        SrttMs = 10,
        RttvarMs = 5,
        ToGuest = [1, 2, 3, 4],
        ToHost = [5, 6],
        Host = new TcpRepairState
        {
            Local = new IPEndPoint(IPAddress.Loopback, 50000),
            Remote = new IPEndPoint(IPAddress.Loopback, 8080),
            SendSeq = 77,
            RecvSeq = 88,
            Mss = 1460,
        },
    };

    [Fact]
    public void FlowAGatewayCouldHaveWritten_IsTaken()
    {
        var section = Section(new GatewayOptions { AllowHostLoopback = true });
        var apply = section.Read(Reader(Write([s_flow], [])));
        Assert.NotNull(apply);
    }

    public static TheoryData<string, string> HostileFlows() => new()
    {
        { "una-after-nxt", "impossible sequence numbers" },
        { "in-flight-not-buffered", "impossible sequence numbers" },
        { "buffer-larger-than-ours", "this gateway's hold" },
        { "guest-outside-network", "outside 10.0.2.0/24" },
        { "guest-is-the-gateway", "outside 10.0.2.0/24" },
        { "socket-to-elsewhere", "is not where this gateway maps it" },
        { "socket-to-other-port", "is not where this gateway maps it" },
        { "listed-twice", "is listed twice" },
        { "port-zero", "port 0" },
        { "tiny-mss", "impossible window or segment size" },
        { "window-shift-15", "impossible window or segment size" },
        { "rto-a-day", "impossible timers" },
        { "fin-acked-not-sent", "contradictory FIN state" },
        { "tunnel-with-socket", "a host socket for a tunnel connection" },
        { "unsent-beyond-queue", "unsent bytes" },
        { "mixed-families", "mixes address families" },
    };

    [Theory]
    [MemberData(nameof(HostileFlows))]
    public void HostileFlow_RefusesTheStream_NamingWhy(string hostile, string expected)
    {
        var flow = hostile switch
        {
            "una-after-nxt" => s_flow with { SndNxt = 999 },
            "in-flight-not-buffered" => s_flow with { SndNxt = 1100, SndMax = 1100 },
            "buffer-larger-than-ours" => s_flow with { SndNxt = 1000, SndMax = 1000, ToGuest = new byte[(64 * 1024) + 1] },
            "guest-outside-network" => s_flow with { Key = s_flow.Key with { GuestIp = IpAddr.FromIpv4(0xC0A80105) } },
            "guest-is-the-gateway" => s_flow with { Key = s_flow.Key with { GuestIp = s_gateway } },
            "socket-to-elsewhere" => s_flow with { Host = s_flow.Host! with { Remote = new IPEndPoint(IPAddress.Parse("192.0.2.1"), 8080) } },
            "socket-to-other-port" => s_flow with { Host = s_flow.Host! with { Remote = new IPEndPoint(IPAddress.Loopback, 22) } },
            "port-zero" => s_flow with { Key = s_flow.Key with { GuestPort = 0 } },
            "tiny-mss" => s_flow with { Mss = 10 },
            "window-shift-15" => s_flow with { SendShift = 15 },
            "rto-a-day" => s_flow with { RtoMs = 86_400_000 },
            "fin-acked-not-sent" => s_flow with { FinAcked = true },
            "tunnel-with-socket" => s_flow with { Origin = TcpFlowOrigin.Virtual },
            "unsent-beyond-queue" => s_flow with { Host = s_flow.Host! with { SendQueue = [1], Unsent = 2 } },
            "mixed-families" => s_flow with { Key = s_flow.Key with { RemoteIp = IpAddr.FromAddress(IPAddress.IPv6Loopback) } },
            _ => s_flow,
        };
        TcpFlowState[] flows = hostile == "listed-twice" ? [s_flow, s_flow] : [flow];

        var section = Section(new GatewayOptions { AllowHostLoopback = true, TcpBufferBytes = 64 * 1024 });
        var ex = Assert.Throws<StateFormatException>(() => section.Read(Reader(Write(flows, []))));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains("gateway.flows", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DatagramFlowFromOutsideTheNetwork_RefusesTheStream()
    {
        var udp = new DatagramFlowState(new FlowKey(IpAddr.FromIpv4(0x0B000005), 5353, IpAddr.FromIpv4(0x0A000203), 53), false,
            new IPEndPoint(IPAddress.Any, 40001), new IPEndPoint(IPAddress.Loopback, 53), true, 100);
        var section = Section(new GatewayOptions());
        var ex = Assert.Throws<StateFormatException>(() => section.Read(Reader(Write([], [udp]))));
        Assert.Contains("outside 10.0.2.0/24", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FlowCountBeyondWhatIsLeft_IsRefusedBeforeAllocating()
    {
        var writer = Header();
        writer.WriteUInt32(uint.MaxValue);
        var section = Section(new GatewayOptions());
        Assert.Throws<StateFormatException>(() => section.Read(Reader(writer)));
    }

    [Fact]
    public void HostileFlow_InAStream_LeavesTheOtherSectionsUnapplied()
    {
        var end = End(new GatewayOptions { AllowHostLoopback = true });
        var registry = new StateRegistry();
        var adopted = false;
        registry.Register(new ProbeSection(() => adopted = true));
        registry.Register(new GatewayFlowSection(() => end, NullLogger.Instance));
        var bytes = StateStream.Build([new ProbeSection(() => { }), new RawSection("gateway.flows", Write([s_flow with { SndNxt = 1 }], []))]);
        Assert.Throws<StateFormatException>(() => registry.Prepare(StateStream.Parse(bytes)));
        Assert.False(adopted);
    }

    private static GatewayFlowSection Section(GatewayOptions options)
    {
        var end = End(options);
        return new GatewayFlowSection(() => end, NullLogger.Instance);
    }

    private static GatewayEnd End(GatewayOptions options) =>
        new("host", options, FramePool.Shared, 64, TimeProvider.System, NullLogger.Instance);

    private static StateSectionReader Reader(StateSectionWriter writer) => new("gateway.flows", writer.Written.ToArray());

    private static StateSectionWriter Header()
    {
        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        writer.WriteByte(1);
        writer.WriteInt64(0x525400123456);
        writer.WriteUInt32(0x0A00020F);
        writer.WriteUInt16(0);
        writer.WriteUInt16(0);
        return writer;
    }

    private static StateSectionWriter Write(TcpFlowState[] flows, DatagramFlowState[] datagrams)
    {
        var writer = Header();
        writer.WriteUInt32((uint)flows.Length);
        foreach (var flow in flows)
        {
            flow.Write(writer);
        }

        writer.WriteUInt32(0);
        writer.WriteUInt32((uint)datagrams.Length);
        foreach (var datagram in datagrams)
        {
            datagram.Write(writer);
        }

        return writer;
    }

    /// <summary>A section whose apply step says it ran.</summary>
    private sealed class ProbeSection(Action applied) : IStateSection
    {
        public string Name => "probe";

        public void Write(StateSectionWriter writer) => writer.WriteBool(true);

        public Action Read(StateSectionReader reader)
        {
            reader.ReadBool();
            return applied;
        }
    }

    /// <summary>Writes given bytes as a section, for streams no source would build.</summary>
    private sealed class RawSection(string name, StateSectionWriter body) : IStateSection
    {
        public string Name => name;

        public void Write(StateSectionWriter writer)
        {
            foreach (var b in body.Written.Span)
            {
                writer.WriteByte(b);
            }
        }

        public Action Read(StateSectionReader reader) => throw new NotSupportedException();
    }
}
