using System.Text.Json;
using System.Text.Json.Serialization;

namespace NetWire.Bench;

/// <summary>One measurement: a JSON line in the results file that <c>summarize</c> reads.</summary>
internal sealed record BenchResult
{
    /// <summary>bridge, raw, sharppcap or generator.</summary>
    [JsonPropertyName("scenario")]
    public required string Scenario { get; init; }

    /// <summary>g2h (guest socket to TAP) or h2g (TAP to guest socket).</summary>
    [JsonPropertyName("direction")]
    public required string Direction { get; init; }

    /// <summary>Frame length in bytes.</summary>
    [JsonPropertyName("size")]
    public required int Size { get; init; }

    /// <summary>Which repetition.</summary>
    [JsonPropertyName("run")]
    public required int Run { get; init; }

    /// <summary>Length of the measuring window.</summary>
    [JsonPropertyName("seconds")]
    public required double Seconds { get; init; }

    /// <summary>Frames counted in the window.</summary>
    [JsonPropertyName("frames")]
    public required long Frames { get; init; }

    /// <summary>Frames per second.</summary>
    [JsonPropertyName("fps")]
    public required double Fps { get; init; }

    /// <summary>CPU seconds of the bench process per million frames.</summary>
    [JsonPropertyName("bench_cpu_s_per_mframe")]
    public required double BenchCpuPerMillion { get; init; }

    /// <summary>
    /// CPU cores other processes kept busy during the window, on average: the rest of the machine
    /// minus the bench and netwire. Anything well above 0 means the run shared the machine.
    /// </summary>
    [JsonPropertyName("others_busy_cores")]
    public required double OthersBusyCores { get; init; }

    /// <summary>Busy cores before the load started (after waiting for a quiet machine).</summary>
    [JsonPropertyName("busy_cores_before")]
    public required double BusyCoresBefore { get; init; }

    /// <summary>CPU seconds of netwire per million frames (bridge only).</summary>
    [JsonPropertyName("netwire_cpu_s_per_mframe")]
    public double? NetWireCpuPerMillion { get; init; }

    /// <summary>Managed bytes netwire allocated per frame between two status readings (bridge only).</summary>
    [JsonPropertyName("alloc_bytes_per_frame")]
    public double? AllocBytesPerFrame { get; init; }

    /// <summary>Managed bytes netwire allocated between the two status readings.</summary>
    [JsonPropertyName("alloc_bytes")]
    public long? AllocBytes { get; init; }

    /// <summary>Frames netwire moved between the two status readings.</summary>
    [JsonPropertyName("alloc_frames")]
    public long? AllocFrames { get; init; }

    /// <summary>Drops netwire counted in the window (bridge only; expected 0).</summary>
    [JsonPropertyName("netwire_drops")]
    public long? NetWireDrops { get; init; }

    /// <summary>Frames the TAP's kernel queue dropped in the window (h2g; expected 0 except for the generator).</summary>
    [JsonPropertyName("kernel_drops")]
    public long? KernelDrops { get; init; }

    private static readonly JsonSerializerOptions s_options = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>One line of JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, s_options);

    /// <summary>Parses one line.</summary>
    public static BenchResult? Parse(string line) => JsonSerializer.Deserialize<BenchResult>(line, s_options);
}
