using System.Net;
using NetWire.Core.State;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Migration;

/// <summary>
/// State section <c>gateway.forwards</c>: the host forwards the source added while it ran (QMP
/// <c>hostfwd-add</c>), so the target publishes the same ports; the forwards of each
/// appliance's own options are its command line's and do not travel.
/// </summary>
/// <remarks>
/// Layout: u8 has gateway, then u16 n and n × {u8 transport (0 TCP, 1 UDP), bytes listen
/// address (4 or 16), u16 listen port, u16 guest port}. Ports are 1 to 65535 (a forward asked
/// for port 0 travels with the port the kernel gave it). The target opens them when its gateway
/// runs, after the source has let the ports go (docs/migration.md, "Gateway flows").
/// </remarks>
public sealed class ForwardStateSection : IStateSection
{
    /// <summary>Most forwards one stream carries.</summary>
    public const int MaxForwards = 1024;

    private readonly Func<GatewayEnd?> _gateway;

    public ForwardStateSection(Func<GatewayEnd?> gateway) => _gateway = gateway;

    public string Name => "gateway.forwards";

    /// <summary>The forwards of the stream read last (<see cref="GatewayFlowSection.CarriedForwards"/> checks its connections against them).</summary>
    public IReadOnlyList<HostForward> Parsed { get; private set; } = [];

    public void Write(StateSectionWriter writer)
    {
        if (_gateway() is not { } gateway)
        {
            writer.WriteBool(false);
            return;
        }

        var forwards = gateway.AddedForwards;
        writer.WriteBool(true);
        writer.WriteUInt16((ushort)Math.Min(forwards.Count, MaxForwards));
        foreach (var forward in forwards.Take(MaxForwards))
        {
            writer.WriteByte(forward.Transport == Transport.Udp ? (byte)1 : (byte)0);
            writer.WriteBytes(forward.Listen.Address.GetAddressBytes());
            writer.WriteUInt16((ushort)forward.Listen.Port);
            writer.WriteUInt16(forward.GuestPort);
        }
    }

    public Action Read(StateSectionReader reader)
    {
        Parsed = [];
        if (!reader.ReadBool())
        {
            return static () => { };
        }

        var count = reader.ReadUInt16();
        if (count > MaxForwards)
        {
            throw reader.Error($"{count} forwards (at most {MaxForwards})");
        }

        var forwards = new List<HostForward>(count);
        for (var i = 0; i < count; i++)
        {
            var transport = reader.ReadByte() switch
            {
                0 => Transport.Tcp,
                1 => Transport.Udp,
                var other => throw reader.Error($"forward {i}: transport {other}"),
            };
            var address = reader.ReadBytes(16);
            if (address.Length is not (4 or 16))
            {
                throw reader.Error($"forward {i}: a listen address of {address.Length} bytes");
            }

            var port = reader.ReadUInt16();
            var guestPort = reader.ReadUInt16();
            if (port == 0 || guestPort == 0)
            {
                throw reader.Error($"forward {i}: port {port} to guest port {guestPort}");
            }

            forwards.Add(new HostForward(transport, new IPEndPoint(new IPAddress(address), port), guestPort));
        }

        Parsed = forwards;
        if (_gateway() is not { } target || forwards.Count == 0)
        {
            // No gateway here: the forwards have nowhere to lead.
            return static () => { };
        }

        return () => target.AdoptForwards(forwards);
    }
}
