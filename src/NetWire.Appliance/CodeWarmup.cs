using System.Reflection;
using System.Runtime.CompilerServices;

namespace NetWire.Appliance;

/// <summary>
/// Compiles the appliance's own methods ahead of their first call, on a background thread. A
/// migration target exists to take over clients quickly: without this, the first client's
/// MIGRATE_END to INIT pays for just-in-time compiling the link, main channel and state code
/// (tens of milliseconds on a small machine) while the client waits.
/// </summary>
internal static class CodeWarmup
{
    private static int s_migrationWarmed;

    /// <summary>
    /// What a migration runs on either side: the SPICE link and main channel, the control socket's
    /// migration, the state stream, the gateway's flow export and restore, the tunnel's flush and
    /// socket restore, the appliance's sections.
    /// </summary>
    public static Assembly[] MigrationAssemblies =>
    [
        typeof(NetWire.Spice.SpiceServer).Assembly,
        typeof(NetWire.Control.Migration.IncomingMigration).Assembly,
        typeof(NetWire.Core.State.StateRegistry).Assembly,
        typeof(NetWire.Stack.Migration.GatewayFlowSection).Assembly,
        typeof(NetWire.Tunnel.TunnelGateway).Assembly,
        typeof(CodeWarmup).Assembly,
    ];

    /// <summary>
    /// Starts compiling the migration code of a source once a migration is in sight
    /// (<c>client_migrate_info</c> or <c>migrate</c>); later calls do nothing. A source that has
    /// been a target before has it compiled already.
    /// </summary>
    public static void WarmSourceOnce()
    {
        if (Interlocked.Exchange(ref s_migrationWarmed, 1) == 0)
        {
            _ = StartAsync(MigrationAssemblies);
        }
    }

    /// <summary>Compiles the migration code for a target (which a later migration onwards then finds compiled); returns the count when done.</summary>
    public static Task<int> WarmMigrationAsync()
    {
        Volatile.Write(ref s_migrationWarmed, 1);
        return StartAsync(MigrationAssemblies);
    }

    /// <summary>Starts compiling every non-generic method with a body in <paramref name="assemblies"/>; returns the count when done.</summary>
    public static Task<int> StartAsync(params Assembly[] assemblies) =>
        Task.Factory.StartNew(() => Prepare(assemblies), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static int Prepare(Assembly[] assemblies)
    {
        const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
        var prepared = 0;
        foreach (var assembly in assemblies)
        {
            Type[] types;
            try
            {
                types = assembly.GetTypes();
            }
            catch (ReflectionTypeLoadException ex)
            {
                types = [.. ex.Types.OfType<Type>()];
            }

            foreach (var type in types)
            {
                if (type.ContainsGenericParameters || type.IsInterface)
                {
                    continue;
                }

                foreach (MethodBase method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
                {
                    if (method.IsAbstract || method.ContainsGenericParameters || (method.MethodImplementationFlags & MethodImplAttributes.InternalCall) != 0)
                    {
                        continue;
                    }

                    try
                    {
                        RuntimeHelpers.PrepareMethod(method.MethodHandle);
                        prepared++;
                    }
                    catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or BadImageFormatException or TypeLoadException or MissingMethodException)
                    {
                        // A method that cannot be prepared on its own is compiled at its first call instead.
                    }
                }
            }
        }

        return prepared;
    }
}
