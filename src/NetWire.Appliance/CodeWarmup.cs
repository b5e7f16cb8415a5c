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
