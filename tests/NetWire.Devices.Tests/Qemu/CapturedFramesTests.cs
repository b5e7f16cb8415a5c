using NetWire.Testing;

namespace NetWire.Devices.Tests.Qemu;

/// <summary>Real frames from captures/ (a QEMU guest's conversation) carried through a stream end both ways.</summary>
public sealed class CapturedFramesTests
{
    [Fact]
    public async Task GuestConversation_FromCaptures_CrossesTheStreamEndByteForByte()
    {
        var frames = CaptureFixtures.ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "bridge-qemu-stream-tap.pcapng"));
        var fromGuest = frames.Where(f => f.Direction == 1).Select(f => f.Frame).ToList();
        var toGuest = frames.Where(f => f.Direction == 2).Select(f => f.Frame).ToList();
        Assert.Equal(36, fromGuest.Count);
        Assert.Equal(40, toGuest.Count);
        Assert.Contains(fromGuest, f => f.Length == 42);

        await using var bridge = await LoopbackBridge.StreamAsync(hostQueue: 128);
        using var client = await StreamClient.ConnectAsync(bridge.SocketPath);
        foreach (var frame in fromGuest)
        {
            await client.SendFrameAsync(frame);
        }

        var atHost = await bridge.HostReceivesAsync(fromGuest.Count);
        Assert.Equal(fromGuest, atHost);

        foreach (var frame in toGuest)
        {
            await bridge.Host.Inject(frame);
        }

        foreach (var expected in toGuest)
        {
            Assert.Equal(expected, await client.ReceiveFrameAsync(TimeSpan.FromSeconds(10)));
        }
    }
}
