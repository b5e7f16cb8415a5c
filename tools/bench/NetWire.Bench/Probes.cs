using System.Globalization;
using System.Text.Json;

namespace NetWire.Bench;

/// <summary>Readings the measurements are made of: interface statistics, process CPU time, the bridge's status file.</summary>
internal static class Probes
{
    /// <summary>Clock ticks per second in /proc/PID/stat (USER_HZ; 100 on every Linux the bench targets).</summary>
    private const double TicksPerSecond = 100.0;

    /// <summary>One counter from /sys/class/net/IF/statistics (rx_packets, tx_dropped, ...).</summary>
    public static long InterfaceCounter(string ifName, string counter) =>
        long.Parse(File.ReadAllText($"/sys/class/net/{ifName}/statistics/{counter}").AsSpan().Trim(), CultureInfo.InvariantCulture);

    /// <summary>True when the interface has carrier (for a TAP: some process has its fd open).</summary>
    public static bool HasCarrier(string ifName)
    {
        try
        {
            return File.ReadAllText($"/sys/class/net/{ifName}/carrier").Trim() == "1";
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>User plus system CPU seconds a process has used, from /proc/PID/stat.</summary>
    public static double CpuSeconds(int pid)
    {
        var text = File.ReadAllText($"/proc/{pid}/stat");

        // The command name (field 2) may hold spaces; fields after its closing parenthesis are
        // state (3), ... utime (14), stime (15).
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
        var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
        return (utime + stime) / TicksPerSecond;
    }

    /// <summary>Busy CPU seconds of the whole machine (all cores; /proc/stat minus idle and iowait).</summary>
    public static double MachineBusySeconds()
    {
        using var reader = new StreamReader("/proc/stat");
        var fields = reader.ReadLine()!.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long busy = 0;
        for (var i = 1; i < fields.Length && i <= 8; i++)
        {
            // user nice system idle iowait irq softirq steal: idle (4) and iowait (5) are not busy.
            if (i is 4 or 5)
            {
                continue;
            }

            busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
        }

        return busy / TicksPerSecond;
    }

    /// <summary>
    /// Waits until the machine has been nearly idle (under <paramref name="maxBusyCores"/> of a
    /// core busy) for one second, or until <paramref name="timeout"/>; returns the last busy share seen.
    /// </summary>
    public static double WaitForQuiet(double maxBusyCores, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var before = MachineBusySeconds();
            Thread.Sleep(1000);
            var busy = MachineBusySeconds() - before;
            if (busy <= maxBusyCores || DateTime.UtcNow > deadline)
            {
                return busy;
            }
        }
    }

    /// <summary>CPU seconds of this process.</summary>
    public static double OwnCpuSeconds() => Environment.CpuUsage.TotalTime.TotalSeconds;
}

/// <summary>One reading of <c>netwire bridge --status-file</c>.</summary>
/// <param name="Time">When netwire wrote it.</param>
/// <param name="Pid">netwire's process id.</param>
/// <param name="GcAllocatedBytes">GC.GetTotalAllocatedBytes at that moment.</param>
/// <param name="HostTxFrames">Frames written to the TAP.</param>
/// <param name="GuestTxFrames">Frames written to the guest socket.</param>
/// <param name="Drops">All drops on both ends.</param>
internal sealed record StatusSnapshot(string Time, int Pid, long GcAllocatedBytes, long HostTxFrames, long GuestTxFrames, long Drops)
{
    /// <summary>Reads the file; null while it does not exist yet or is being replaced.</summary>
    public static StatusSnapshot? TryRead(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = document.RootElement;
            long hostTx = 0, guestTx = 0, drops = 0;
            foreach (var end in root.GetProperty("ends").EnumerateArray())
            {
                var tx = end.GetProperty("tx_frames").GetInt64();
                drops += end.GetProperty("drops_total").GetInt64();
                switch (end.GetProperty("name").GetString())
                {
                    case "host":
                        hostTx = tx;
                        break;
                    case "guest":
                        guestTx = tx;
                        break;
                }
            }

            return new StatusSnapshot(
                root.GetProperty("time").GetString() ?? "",
                root.GetProperty("pid").GetInt32(),
                root.GetProperty("gc_allocated_bytes").GetInt64(),
                hostTx,
                guestTx,
                drops);
        }
        catch (Exception ex) when (ex is IOException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Waits for a reading written after <paramref name="previous"/> (the file is rewritten every second).</summary>
    public static StatusSnapshot WaitFresh(string path, StatusSnapshot? previous, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var snapshot = TryRead(path);
            if (snapshot is not null && (previous is null || snapshot.Time != previous.Time))
            {
                return snapshot;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"status file {path} was not rewritten within {timeout.TotalSeconds} s");
            }

            Thread.Sleep(20);
        }
    }
}
