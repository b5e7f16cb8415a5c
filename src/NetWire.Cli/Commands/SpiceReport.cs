using System.Globalization;
using System.Text;
using System.Text.Json;
using NetWire.Devices.Pcap;

namespace NetWire.Cli.Commands;

/// <summary><c>netwire inspect --spice</c>'s output: text for people, JSON (shape in docs/cli.md) for tools.</summary>
internal static class SpiceReport
{
    public static string ToText(SpiceSummary summary)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"SPICE conversations: {summary.Conversations.Count}\n");
        foreach (var c in summary.Conversations)
        {
            text.Append(CultureInfo.InvariantCulture, $"\n#{c.Index} {c.Client} -> {c.Server} {c.Channel} connection id {c.ConnectionId:x8}");
            if (c.SessionId is { } session)
            {
                text.Append(CultureInfo.InvariantCulture, $" session {session:x8}");
            }

            text.Append(c.IsMigrationTarget ? " (migrating in)" : "").Append('\n');
            foreach (var m in c.Messages)
            {
                text.Append(CultureInfo.InvariantCulture, $"  {Relative(summary, m.TimeNs),10:0.000000} {(m.FromClient ? "C>S" : "S>C")} {m.Name}");
                if (m.Type != 0)
                {
                    text.Append(CultureInfo.InvariantCulture, $" ({m.Type}, {m.Size} bytes)");
                }

                text.Append(m.Detail is null ? "" : " " + m.Detail).Append('\n');
            }

            if (c.Problem is { } problem)
            {
                text.Append("  problem: ").Append(problem).Append('\n');
            }
        }

        foreach (var migration in summary.Migrations)
        {
            text.Append(CultureInfo.InvariantCulture, $"\nMigration of session {migration.SessionId:x8} ({migration.Kind}): #{migration.Source} -> ")
                .Append(migration.Target is { } target ? "#" + target.ToString(CultureInfo.InvariantCulture) : "?").Append('\n');
            foreach (var e in migration.Events)
            {
                text.Append(string.Create(CultureInfo.InvariantCulture, $"  {Relative(summary, e.TimeNs),10:0.000000} #{e.Conversation} {e.Direction} {e.Event} {e.Detail}").TrimEnd()).Append('\n');
            }

            text.Append(migration.SwitchTime is { } time
                ? string.Create(CultureInfo.InvariantCulture, $"  client switch: {time.TotalMilliseconds:0.000} ms, migration {migration.Duration!.Value.TotalMilliseconds:0.000} ms\n")
                : "  client switch: not completed\n");
        }

        return text.ToString();
    }

    public static string ToJson(SpiceSummary summary)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteNumber("first_ns", summary.FirstNs);
            json.WriteStartArray("conversations");
            foreach (var c in summary.Conversations)
            {
                json.WriteStartObject();
                json.WriteNumber("index", c.Index);
                json.WriteString("client", c.Client);
                json.WriteString("server", c.Server);
                json.WriteString("channel", c.Channel);
                json.WriteNumber("channel_type", c.ChannelType);
                json.WriteNumber("channel_id", c.ChannelId);
                json.WriteNumber("connection_id", c.ConnectionId);
                WriteNullable(json, "session_id", c.SessionId);
                WriteNullable(json, "link_reply", c.ReplyError);
                WriteNullable(json, "link_result", c.LinkResult);
                json.WriteBoolean("migrating_in", c.IsMigrationTarget);
                json.WriteBoolean("client_mini_header", c.ClientMini);
                json.WriteBoolean("server_mini_header", c.ServerMini);
                json.WriteStartArray("messages");
                foreach (var m in c.Messages)
                {
                    json.WriteStartObject();
                    json.WriteNumber("time_s", Relative(summary, m.TimeNs));
                    json.WriteString("direction", m.FromClient ? "C>S" : "S>C");
                    json.WriteNumber("type", m.Type);
                    json.WriteString("name", m.Name);
                    json.WriteNumber("size", m.Size);
                    if (m.Detail is { } detail)
                    {
                        json.WriteString("detail", detail);
                    }

                    if (m.Destination is not null)
                    {
                        WriteDestination(json, m.Destination);
                    }

                    json.WriteEndObject();
                }

                json.WriteEndArray();
                if (c.Problem is { } problem)
                {
                    json.WriteString("problem", problem);
                }

                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartArray("migrations");
            foreach (var migration in summary.Migrations)
            {
                json.WriteStartObject();
                json.WriteNumber("session_id", migration.SessionId);
                json.WriteString("kind", migration.Kind);
                json.WriteNumber("source", migration.Source);
                if (migration.Target is { } target)
                {
                    json.WriteNumber("target", target);
                }
                else
                {
                    json.WriteNull("target");
                }

                WriteDestination(json, migration.Destination);
                json.WriteStartArray("events");
                foreach (var e in migration.Events)
                {
                    json.WriteStartObject();
                    json.WriteNumber("time_s", Relative(summary, e.TimeNs));
                    json.WriteString("event", e.Event);
                    json.WriteNumber("conversation", e.Conversation);
                    json.WriteString("direction", e.Direction);
                    json.WriteString("detail", e.Detail);
                    json.WriteEndObject();
                }

                json.WriteEndArray();
                WriteMilliseconds(json, "switch_ms", migration.SwitchTime);
                WriteMilliseconds(json, "duration_ms", migration.Duration);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static double Relative(SpiceSummary summary, long ns) => Math.Round((ns - summary.FirstNs) / 1e9, 6);

    private static void WriteDestination(Utf8JsonWriter json, SpiceDestination? destination)
    {
        if (destination is null)
        {
            json.WriteNull("destination");
            return;
        }

        json.WriteStartObject("destination");
        WriteNullableString(json, "host", destination.Host);
        json.WriteNumber("port", destination.Port);
        WriteNullable(json, "secure_port", destination.SecurePort is { } sport ? (uint)sport : null);
        WriteNullableString(json, "subject", destination.Subject);
        json.WriteEndObject();
    }

    private static void WriteNullableString(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }

    private static void WriteMilliseconds(Utf8JsonWriter json, string name, TimeSpan? value)
    {
        if (value is { } time)
        {
            json.WriteNumber(name, Math.Round(time.TotalMilliseconds, 3));
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, uint? value)
    {
        if (value is { } v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }
}
