using NetWire.Core.Wire;

namespace NetWire.Devices.Tests;

/// <summary>
/// The eventfd signal the device threads sleep on: a set is consumed by one wait, a set before
/// the wait is not lost, it wakes a thread asleep on another thread, and a set after disposal
/// (a producer that still holds it) does nothing.
/// </summary>
public sealed class EventFdSignalTests
{
    [Fact]
    public void Set_IsConsumedByOneWait()
    {
        var signal = EventFdSignal.Create();
        Assert.IsType<EventFdSignal>(signal);
        Assert.False(signal.Wait(0));
        signal.Set();
        signal.Set();
        Assert.True(signal.Wait(0));
        Assert.False(signal.Wait(0));
        EventFdSignal.Release(signal);
    }

    [Fact]
    public void Set_WakesAThreadAsleepInWait()
    {
        var signal = EventFdSignal.Create();
        var woken = false;
        var sleeper = new Thread(() => woken = signal.Wait(60_000));
        sleeper.Start();

        // Most likely asleep in poll(2) by now; a set before it sleeps must wake it just the same.
        Thread.Sleep(50);
        signal.Set();
        Assert.True(sleeper.Join(TimeSpan.FromSeconds(60)));
        Assert.True(woken);
        EventFdSignal.Release(signal);
    }

    [Fact]
    public void SetAfterRelease_DoesNothing()
    {
        var signal = EventFdSignal.Create();
        EventFdSignal.Release(signal);
        Assert.Null(Record.Exception(signal.Set));
    }
}
