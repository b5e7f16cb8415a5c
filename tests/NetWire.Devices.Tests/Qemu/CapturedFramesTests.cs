using System.Buffers.Binary;
using NetWire.Testing;

namespace NetWire.Devices.Tests.Qemu;

/// <summary>Real frames from captures/ (a QEMU guest's conversation) carried through a stream end both ways.</summary>
public sealed class CapturedFramesTests
{
    /// <summary>Enhanced Packet Blocks of a little-endian pcapng file: (direction flags, frame bytes).</summary>
    internal static List<(uint Direction, byte[] Frame)> ReadPcapNg(string path)
    {
        var file = File.ReadAllBytes(path);
        var frames = new List<(uint, byte[])>();
        for (var at = 0; at < file.Length;)
        {
            var type = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 4));
            if (type == 6)
            {
                var captured = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 20));
                var options = at + 28 + ((captured + 3) & ~3);
                uint direction = 0;
                while (options < at + length - 4)
                {
                    var code = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(options));
                    var size = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(options + 2));
                    if (code == 0)
                    {
                        break;
                    }

                    if (code == 2)
                    {
                        direction = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(options + 4)) & 3;
                    }

                    options += 4 + ((size + 3) & ~3);
                }

                frames.Add((direction, file.AsSpan(at + 28, captured).ToArray()));
            }

            at += length;
        }

        return frames;
    }

    [Fact]
    public async Task GuestConversation_FromCaptures_CrossesTheStreamEndByteForByte()
    {
        var frames = ReadPcapNg(Path.Combine(RepoPaths.Root, "captures", "bridge-qemu-stream-tap.pcapng"));
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
