using NetWire.Testing;

namespace NetWire.Core.Tests.Packets;

/// <summary>Random bytes and damaged real frames through every view: false or a value, never an exception.</summary>
public sealed class PacketFuzzTests
{
    [Fact]
    public void RandomBytes_NeverThrow()
    {
        var random = new Random(4242);
        for (var i = 0; i < 20_000; i++)
        {
            var frame = new byte[random.Next(0, 400)];
            random.NextBytes(frame);

            // Mostly IPv4, IPv6 and ARP, so the deeper layers see random headers too.
            if (frame.Length >= 24 && i % 4 != 0)
            {
                frame[12] = 0x08;
                frame[13] = i % 4 == 1 ? (byte)0x06 : (byte)0x00;
                frame[14] = (byte)(0x45 + (i % 3));
                frame[23] = (byte)(i % 3 == 0 ? 6 : i % 3 == 1 ? 17 : 1);
            }

            if (frame.Length >= 62 && i % 8 == 4)
            {
                // IPv6 with a payload length that fits, and a next header among the ones the walk reads.
                frame[12] = 0x86;
                frame[13] = 0xdd;
                frame[14] = 0x60;
                frame[18] = (byte)((frame.Length - 54) >> 8);
                frame[19] = (byte)(frame.Length - 54);
                frame[20] = (byte)((i / 8 % 7) switch { 0 => 0, 1 => 43, 2 => 44, 3 => 60, 4 => 58, 5 => 6, _ => 17 });
                frame[54] = (byte)((i / 56 % 4) switch { 0 => 58, 1 => 60, 2 => 17, _ => 0 });
            }

            PacketWalk.Walk(frame);
        }
    }

    [Fact]
    public void RealFramesWithOneByteChanged_NeverThrow()
    {
        var random = new Random(17);
        foreach (var path in CaptureFixtures.All)
        {
            foreach (var (_, original) in CaptureFixtures.ReadPcapNg(path))
            {
                for (var i = 0; i < 64; i++)
                {
                    var frame = (byte[])original.Clone();
                    frame[random.Next(frame.Length)] = (byte)random.Next(256);
                    PacketWalk.Walk(frame);
                    PacketWalk.Walk(frame.AsSpan(0, random.Next(frame.Length)));
                }
            }
        }
    }
}
