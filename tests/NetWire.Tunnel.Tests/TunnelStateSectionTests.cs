using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Net;
using NetWire.Core.State;
using NetWire.Stack;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;

namespace NetWire.Tunnel.Tests;

/// <summary>
/// Section <c>tunnel.sockets</c> on a target (docs/migration.md, "Tunnel sockets"): a section a
/// source could have written is taken (its sockets wait for their session, their far ends for the
/// gateway's import); a hostile one is refused before anything is applied.
/// </summary>
public sealed class TunnelStateSectionTests
{
    private static readonly FlowKey s_key = new(IpAddr.FromIpv4(Ip.ToUInt(System.Net.IPAddress.Parse("10.0.2.15"))), 40000, IpAddr.FromIpv4(Virtual), 80);

    private static uint Virtual => Ip.ToUInt(System.Net.IPAddress.Parse("10.0.2.31"));

    [Fact]
    public void ASectionASourceCouldWrite_IsTaken_AndWaitsForItsSession()
    {
        var (tunnel, section) = Target();
        var apply = section.Read(new StateSectionReader(section.Name, Build(new Fields())));
        Assert.Null(tunnel.TakeMigrated(7));
        apply();
        using var far = tunnel.TakeFar(s_key);
        Assert.NotNull(far);
        Assert.Null(tunnel.TakeFar(s_key));
        using var migrated = tunnel.TakeMigrated(7);
        Assert.NotNull(migrated);
        var socket = Assert.Single(migrated.Sockets);
        Assert.True(socket.Attached);
        Assert.Equal(3, socket.State.Queued.Count);
        Assert.Equal(100, socket.State.ToPeer.Length);
        Assert.Equal(Virtual, Assert.Single(migrated.Services).Address);
    }

    public static TheoryData<string, Fields> Hostile => new()
    {
        { "layout", new Fields { Layout = 2 } },
        { "more sessions than clients", new Fields { Sessions = 5 } },
        { "session id 0", new Fields { SessionId = 0 } },
        { "session twice", new Fields { Sessions = 2 } },
        { "service address outside the virtual range", new Fields { ServiceAddress = Ip.ToUInt(System.Net.IPAddress.Parse("10.0.2.2")) } },
        { "more services than allowed", new Fields { Services = 33 } },
        { "connection id out of range", new Fields { Id = 20 } },
        { "connection id twice", new Fields { Sockets = 2 } },
        { "more sockets than the table", new Fields { Sockets = 21 } },
        { "not a virtual service", new Fields { Remote = Ip.ToUInt(System.Net.IPAddress.Parse("192.0.2.1")) } },
        { "guest port 0", new Fields { GuestPort = 0 } },
        { "window 0", new Fields { InWindow = 0, Consumed = 0, Queued = 0 } },
        { "window past the largest grant", new Fields { InWindow = 5000 } },
        { "tokens past the grant", new Fields { OutTokens = 33 } },
        { "owed past the window", new Fields { Consumed = 33 } },
        { "unknown flags", new Fields { Flags = 8 } },
        { "queued past the window", new Fields { Queued = 31 } },
        { "a piece larger than the data size", new Fields { ChunkBytes = (16 * 1024) + 1 } },
        { "bytes to the client past the bound", new Fields { ToPeerDeclared = (16 << 20) + 1 } },
        { "cut short", new Fields { Cut = 1 } },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void AHostileSection_IsRefused_BeforeAnythingIsApplied(string why, Fields fields)
    {
        var (tunnel, section) = Target();
        var error = Assert.Throws<StateFormatException>(() => section.Read(new StateSectionReader(section.Name, Build(fields))));
        Assert.Contains("tunnel.sockets", error.Message, StringComparison.Ordinal);
        Assert.True(tunnel.TakeMigrated(7) is null, why);
        Assert.Null(tunnel.TakeFar(s_key));
    }

    private static (TunnelGateway Tunnel, TunnelStateSection Section) Target()
    {
        var tunnel = new TunnelGateway(new GatewayOptions(), () => null, new TunnelOptions());
        var flows = new GatewayFlowSection(() => (GatewayEnd?)null, NullLogger.Instance);
        return (tunnel, new TunnelStateSection(tunnel, () => null, flows, NullLogger.Instance));
    }

    private static byte[] Build(Fields f)
    {
        var writer = new StateSectionWriter();
        writer.WriteByte(f.Layout);
        writer.WriteUInt32((uint)f.Sessions);
        for (var s = 0; s < f.Sessions; s++)
        {
            writer.WriteUInt32(f.SessionId);
            writer.WriteUInt32((uint)f.Services);
            for (var i = 0; i < f.Services; i++)
            {
                writer.WriteUInt32((uint)i + 1);
                writer.WriteUInt32(1);
                writer.WriteUInt16((ushort)(80 + i));
                writer.WriteUInt32(f.ServiceAddress);
            }

            writer.WriteUInt32((uint)f.Sockets);
            for (var i = 0; i < f.Sockets; i++)
            {
                writer.WriteUInt16(f.Id);
                writer.WriteUInt32(1);
                writer.WriteUInt32(s_key.GuestIp.Ipv4);
                writer.WriteUInt16(f.GuestPort);
                writer.WriteUInt32(f.Remote);
                writer.WriteUInt16(80);
                writer.WriteUInt32(f.InWindow);
                writer.WriteUInt32(32);
                writer.WriteUInt32(f.OutTokens);
                writer.WriteUInt32(f.Consumed);
                writer.WriteByte(f.Flags);
                if (f.ToPeerDeclared is { } declared)
                {
                    writer.WriteUInt32(declared);
                    writer.WriteBytes(new byte[100]);
                }
                else
                {
                    writer.WriteBytes(new byte[100]);
                }

                writer.WriteBytes(new byte[50]);
                writer.WriteUInt32((uint)f.Queued);
                for (var q = 0; q < f.Queued; q++)
                {
                    writer.WriteBytes(new byte[f.ChunkBytes]);
                }
            }
        }

        var bytes = writer.Written.ToArray();
        return bytes[..^f.Cut];
    }

    /// <summary>The fields of a one-socket section; each hostile case changes one.</summary>
    public sealed record Fields
    {
        public byte Layout { get; init; } = 1;

        public int Sessions { get; init; } = 1;

        public uint SessionId { get; init; } = 7;

        public int Services { get; init; } = 1;

        public uint ServiceAddress { get; init; } = Virtual;

        public int Sockets { get; init; } = 1;

        public ushort Id { get; init; }

        public ushort GuestPort { get; init; } = 40000;

        public uint Remote { get; init; } = Virtual;

        public uint InWindow { get; init; } = 32;

        public uint OutTokens { get; init; } = 10;

        public uint Consumed { get; init; } = 2;

        public byte Flags { get; init; }

        public uint? ToPeerDeclared { get; init; }

        public int Queued { get; init; } = 3;

        public int ChunkBytes { get; init; } = 1000;

        public int Cut { get; init; }
    }
}
