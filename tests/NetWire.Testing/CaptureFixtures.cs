using System.Buffers.Binary;

namespace NetWire.Testing;

/// <summary>The real captures in <c>captures/</c>, read without the code under test.</summary>
public static class CaptureFixtures
{
    /// <summary>Every <c>captures/*.pcapng</c> file, full paths, sorted.</summary>
    public static IReadOnlyList<string> All =>
        [.. Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "captures"), "*.pcapng").Order(StringComparer.Ordinal)];

    /// <summary>
    /// Enhanced Packet Blocks of a little-endian pcapng file (the pcapng draft, 4.3), in order:
    /// the <c>epb_flags</c> direction bits (1 inbound, 2 outbound, 0 unknown) and the frame bytes.
    /// </summary>
    public static List<(uint Direction, byte[] Frame)> ReadPcapNg(string path)
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
}
