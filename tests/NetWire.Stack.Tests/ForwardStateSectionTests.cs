using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.Frames;
using NetWire.Core.State;
using NetWire.Stack.Migration;
using NetWire.Stack.Nat;

namespace NetWire.Stack.Tests;

/// <summary>
/// The gateway's <c>gateway.forwards</c> section: the forwards a source added while it ran
/// (QMP <c>hostfwd-add</c>) open on the target once it runs, the options' own do not travel, and
/// a hostile section is refused before anything applies.
/// </summary>
public sealed class ForwardStateSectionTests
{
    [Fact]
    public async Task AddedForwards_Travel_AndOpenOnTheTargetWhenItRuns()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        var optionPort = FreePort();
        var options = new GatewayOptions { Forwards = [HostForward.Parse($"tcp:{optionPort}:22")] };
        await using var source = new Running(options);
        var tcp = source.End.AddForward(HostForward.Parse("tcp:0:80"));
        var udp = source.End.AddForward(HostForward.Parse("udp:0:53"));
        var added = source.End.AddedForwards;
        Assert.Equal(2, added.Count);
        Assert.DoesNotContain(added, f => f.Listen.Port == optionPort);
        var bytes = StateStream.Build([new ForwardStateSection(() => source.End)]);

        // The target is held (a migration target): the forwards wait until it runs, as the
        // source lets their ports go first.
        await using var target = new Running(options with { Forwards = [] }, hold: true);
        var section = new ForwardStateSection(() => target.End);
        var registry = new StateRegistry();
        registry.Register(section);
        var adopted = registry.Adopt(StateStream.Parse(bytes));
        Assert.Equal(["gateway.forwards"], adopted.Adopted);
        Assert.Equal(added, section.Parsed);
        Assert.Empty(target.End.Forwards);

        Assert.True(source.End.RemoveForward(tcp));
        Assert.True(source.End.RemoveForward(udp));
        target.End.ReleaseHold();
        await WaitAsync(() => target.End.Forwards.Count == 2, cancellationToken);
        Assert.Equal(added, target.End.Forwards.Select(f => f.Forward));

        // They are added forwards there too, so a chained migration carries them on.
        Assert.Equal(added, target.End.AddedForwards);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(added[0].Listen, cancellationToken);
    }

    [Fact]
    public async Task ARunningTarget_OpensThemAtOnce_KeepsItsOwn_AndLeavesOutAPortInUse()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        using var busy = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        busy.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        busy.Listen();
        var busyPort = ((IPEndPoint)busy.LocalEndPoint!).Port;
        var own = HostForward.Parse($"tcp:{FreePort()}:22");
        var free = HostForward.Parse($"tcp:{FreePort()}:80");
        await using var target = new Running(new GatewayOptions { Forwards = [own] });
        await WaitAsync(() => target.End.Forwards.Count == 1, cancellationToken);

        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        writer.WriteUInt16(3);
        foreach (var forward in (HostForward[])[own, free, HostForward.Parse($"tcp:{busyPort}:81")])
        {
            writer.WriteByte(0);
            writer.WriteBytes(forward.Listen.Address.GetAddressBytes());
            writer.WriteUInt16((ushort)forward.Listen.Port);
            writer.WriteUInt16(forward.GuestPort);
        }

        new ForwardStateSection(() => target.End).Read(new StateSectionReader("gateway.forwards", writer.Written.ToArray()))();
        Assert.Equal([own, free], target.End.Forwards.Select(f => f.Forward));
        Assert.Equal([free], target.End.AddedForwards);
    }

    [Theory]
    [InlineData(7, 4, 8080, 80, "transport 7")]
    [InlineData(0, 5, 8080, 80, "listen address of 5 bytes")]
    [InlineData(0, 4, 0, 80, "port 0 to guest port 80")]
    [InlineData(1, 16, 8080, 0, "port 8080 to guest port 0")]
    public void HostileForward_IsRefused(byte transport, int addressBytes, ushort port, ushort guestPort, string expected)
    {
        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        writer.WriteUInt16(1);
        writer.WriteByte(transport);
        writer.WriteBytes(new byte[addressBytes]);
        writer.WriteUInt16(port);
        writer.WriteUInt16(guestPort);
        var ex = Assert.Throws<StateFormatException>(() => new ForwardStateSection(() => null).Read(new StateSectionReader("gateway.forwards", writer.Written.ToArray())));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TooManyForwards_AreRefusedBeforeAnyIsRead()
    {
        var writer = new StateSectionWriter();
        writer.WriteBool(true);
        writer.WriteUInt16(ForwardStateSection.MaxForwards + 1);
        var ex = Assert.Throws<StateFormatException>(() => new ForwardStateSection(() => null).Read(new StateSectionReader("gateway.forwards", writer.Written.ToArray())));
        Assert.Contains($"{ForwardStateSection.MaxForwards + 1} forwards", ex.Message, StringComparison.Ordinal);
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static async Task WaitAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        for (var i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10, cancellationToken);
        }

        Assert.True(condition());
    }

    /// <summary>A gateway end running until disposed.</summary>
    private sealed class Running : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _run;

        public Running(GatewayOptions options, bool hold = false)
        {
            End = new GatewayEnd("host", options, FramePool.Shared, 64, TimeProvider.System, NullLogger.Instance);
            if (hold)
            {
                End.Hold();
            }

            _run = End.RunAsync(new CollectingReceiver(), _stop.Token);
        }

        public GatewayEnd End { get; }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _run.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await End.DisposeAsync();
            _stop.Dispose();
        }
    }
}
