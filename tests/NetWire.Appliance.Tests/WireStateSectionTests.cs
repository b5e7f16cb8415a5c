using Microsoft.Extensions.Logging.Abstractions;
using NetWire.Core.State;
using NetWire.Core.Wire;
using NetWire.Testing;

namespace NetWire.Appliance.Tests;

/// <summary>The <c>wire</c> state section: a migration target's ends continue the source's counters by end name.</summary>
public sealed class WireStateSectionTests
{
    [Fact]
    public void Counters_ContinueOnTheTargetsEndOfTheSameName_AddedToItsOwn()
    {
        var guest = new InMemoryWireEnd("guest", 4);
        guest.Counters.Received(100);
        guest.Counters.Received(60);
        guest.Counters.Dropped(DropReason.PeerFull, 3);
        var host = new InMemoryWireEnd("host", 4);
        host.Counters.Transmitted(42);
        var bytes = StateStream.Build([new WireStateSection(() => [guest, host], NullLogger.Instance)]);

        var targetHost = new InMemoryWireEnd("host", 4);
        targetHost.Counters.Transmitted(8);
        var targetGuest = new InMemoryWireEnd("guest", 4);
        var registry = new StateRegistry();
        registry.Register(new WireStateSection(() => [targetGuest, targetHost], NullLogger.Instance));
        Assert.Equal(["wire"], registry.Adopt(StateStream.Parse(bytes)).Adopted);

        Assert.Equal((2, 160, 3), (targetGuest.Counters.RxFrames, targetGuest.Counters.RxBytes, targetGuest.Counters.Drops(DropReason.PeerFull)));
        Assert.Equal((2, 50), (targetHost.Counters.TxFrames, targetHost.Counters.TxBytes));
    }

    [Fact]
    public void AnEndTheTargetLacks_LeavesItsCountersBehind()
    {
        var host = new InMemoryWireEnd("host", 4);
        host.Counters.Received(64);
        var bytes = StateStream.Build([new WireStateSection(() => [host], NullLogger.Instance)]);

        var registry = new StateRegistry();
        registry.Register(new WireStateSection(static () => [], NullLogger.Instance));
        Assert.Equal(["wire"], registry.Adopt(StateStream.Parse(bytes)).Adopted);
    }

    [Fact]
    public void NegativeCounter_IsRefused_AndNothingIsApplied()
    {
        var writer = new StateSectionWriter();
        writer.WriteUInt32(1);
        writer.WriteString("guest");
        writer.WriteString("memory guest");
        writer.WriteInt64(-1);
        writer.WriteInt64(0);
        writer.WriteInt64(0);
        writer.WriteInt64(0);
        writer.WriteInt64(0);
        writer.WriteUInt32(0);
        var target = new InMemoryWireEnd("guest", 4);
        var section = new WireStateSection(() => [target], NullLogger.Instance);

        var ex = Assert.Throws<StateFormatException>(() => section.Read(new StateSectionReader("wire", writer.Written.ToArray())));
        Assert.Contains("negative counter", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, target.Counters.RxFrames);
    }
}
