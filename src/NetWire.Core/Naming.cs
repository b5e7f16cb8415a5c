using System.Text;

namespace NetWire.Core;

/// <summary>Names of counters and reasons as the status file, meters and QMP print them.</summary>
public static class Naming
{
    /// <summary>
    /// A PascalCase name in lower case with <paramref name="separator"/> between its words:
    /// <c>TlsOnPlainPort</c> becomes <c>tls_on_plain_port</c> (status file, meters) or
    /// <c>tls-on-plain-port</c> (QMP, as QEMU's names).
    /// </summary>
    public static string Words(string pascalCase, char separator)
    {
        var text = new StringBuilder(pascalCase.Length + 4);
        for (var i = 0; i < pascalCase.Length; i++)
        {
            if (char.IsUpper(pascalCase[i]) && i > 0)
            {
                text.Append(separator);
            }

            text.Append(char.ToLowerInvariant(pascalCase[i]));
        }

        return text.ToString();
    }
}
