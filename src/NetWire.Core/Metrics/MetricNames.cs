using System.Text;

namespace NetWire.Core.Metrics;

/// <summary>How enum values are named in counters, status files and metric tags.</summary>
public static class MetricNames
{
    /// <summary>PascalCase to snake_case: <c>BadChecksum</c> becomes <c>bad_checksum</c>.</summary>
    public static string SnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }
}
