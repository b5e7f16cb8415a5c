using System.Diagnostics;
using NetWire.Testing;

namespace NetWire.Core.Tests.Packets;

/// <summary>The views are on the hot path: parsing a frame through every layer allocates nothing.</summary>
public sealed class PacketAllocationTests
{
    [Fact]
    public void ParsingEveryCaptureFrame_ThroughEveryLayer_AllocatesNothing()
    {
        var frames = CaptureFixtures.All.SelectMany(path => CaptureFixtures.ReadPcapNg(path)).Select(f => f.Frame).ToArray();
        const int Rounds = 2000;
        long check = 0;

        // Long enough for the tiered JIT to have compiled the views fully, so the time is the steady state's.
        var warmUntil = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < warmUntil)
        {
            foreach (var frame in frames)
            {
                check += PacketWalk.Walk(frame);
            }
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        var start = Stopwatch.GetTimestamp();
        for (var round = 0; round < Rounds; round++)
        {
            foreach (var frame in frames)
            {
                check += PacketWalk.Walk(frame);
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(start);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var parsed = (long)Rounds * frames.Length;
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{parsed} frames of {frames.Average(f => f.Length):F0} bytes on average, parsed through every layer with checksums verified: " +
            $"{allocated} bytes allocated, {elapsed.TotalNanoseconds / parsed:F0} ns per frame ({check})");
        Assert.Equal(0, allocated);
    }
}
