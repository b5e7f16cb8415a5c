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

    /// <summary>
    /// Starts compiling every non-generic method with a body in <paramref name="assemblies"/>, with
    /// the generic instantiations they call (<see cref="GenericCallees"/>); returns the count when done.
    /// </summary>
    public static Task<int> StartAsync(params Assembly[] assemblies) =>
        Task.Factory.StartNew(() => Prepare(assemblies), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static int Prepare(Assembly[] assemblies)
    {
        // A migration's first QMP event (MIGRATION active on a target) otherwise compiles the JSON writer then.
        _ = NetWire.Control.Qmp.QmpServer.FormatEvent("MIGRATION", new System.Text.Json.Nodes.JsonObject { ["status"] = "active" }, DateTimeOffset.UtcNow);

        var prepared = 0;
        var generics = new GenericCallees();
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
                prepared += PrepareType(type, generics);
            }
        }

        return prepared;
    }

    /// <summary>Compiles the methods of <paramref name="types"/> and the generic instantiations they call (tests); returns the count.</summary>
    internal static int PrepareTypes(params Type[] types)
    {
        var generics = new GenericCallees();
        return types.Sum(t => PrepareType(t, generics));
    }

    private static int PrepareType(Type type, GenericCallees generics)
    {
        const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
        if (type.ContainsGenericParameters || type.IsInterface)
        {
            return 0;
        }

        var prepared = PrepareAsyncMachinery(type);
        LoadInterfaceMaps(type);
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

            prepared += generics.PrepareCallees(method, 0);
        }

        return prepared;
    }

    /// <summary>
    /// Loads the type's interface maps. Until a type's map for an interface is loaded,
    /// <see cref="RuntimeHelpers.PrepareMethod(RuntimeMethodHandle)"/> leaves the methods that
    /// implement that interface uncompiled, without an error: every state section's Read and
    /// Write, the handover steps and Dispose were compiled in the middle of a migration
    /// (docs/performance.md, "Gateway flows moved by a migration").
    /// </summary>
    private static void LoadInterfaceMaps(Type type)
    {
        if (type.IsValueType && type.IsByRefLike)
        {
            return;
        }

        foreach (var contract in type.GetInterfaces())
        {
            try
            {
                _ = type.GetInterfaceMap(contract);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException)
            {
                // Its methods are compiled at their first call instead.
            }
        }
    }

    /// <summary>
    /// An async method's state machine (a struct in a Release build) runs through the builder's
    /// generic methods and a box type instantiated over it, which preparing the method itself does
    /// not compile: each was compiled at its first wait, a few per async method, 20 to 40 ms of a
    /// migration on a loaded 2-core machine (docs/performance.md). Prepares the builder's Start, its
    /// AwaitUnsafeOnCompleted for the awaiters the state machine holds, and the box.
    /// </summary>
    private static int PrepareAsyncMachinery(Type type)
    {
        const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
        if (!type.IsValueType || !typeof(IAsyncStateMachine).IsAssignableFrom(type)
            || type.GetField("<>t__builder", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)?.FieldType is not { } builder)
        {
            return 0;
        }

        var awaiters = new List<Type>();
        foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic))
        {
            if (field.Name.StartsWith("<>u__", StringComparison.Ordinal) && field.FieldType.IsValueType && typeof(ICriticalNotifyCompletion).IsAssignableFrom(field.FieldType))
            {
                awaiters.Add(field.FieldType);
            }
        }

        // Task, ValueTask and async void builders keep the state machine in AsyncTaskMethodBuilder<TResult>'s box.
        var result = builder.IsGenericType ? builder.GetGenericArguments()[0] : typeof(Task).Assembly.GetType("System.Threading.Tasks.VoidTaskResult");
        var core = result is null ? null : typeof(AsyncTaskMethodBuilder<>).MakeGenericType(result);
        var prepared = 0;
        foreach (var owner in core is null || core == builder ? [builder] : new[] { builder, core })
        {
            foreach (var method in owner.GetMethods(all))
            {
                if (!method.IsGenericMethodDefinition)
                {
                    continue;
                }

                var arity = method.GetGenericArguments().Length;
                if (arity == 1 && method.Name is "Start" or "GetStateMachineBox")
                {
                    prepared += TryPrepare(method, [type]);
                }
                else if (arity == 2 && method.Name == "AwaitUnsafeOnCompleted")
                {
                    foreach (var awaiter in awaiters)
                    {
                        prepared += TryPrepare(method, [awaiter, type]);
                    }
                }
            }
        }

        if (result is not null && typeof(AsyncTaskMethodBuilder<>).GetNestedType("AsyncStateMachineBox`1", BindingFlags.NonPublic) is { } box)
        {
            try
            {
                var closed = box.MakeGenericType(result, type);
                foreach (MethodBase method in closed.GetMethods(all).Cast<MethodBase>().Concat(closed.GetConstructors(all)))
                {
                    if (!method.IsAbstract && !method.ContainsGenericParameters)
                    {
                        RuntimeHelpers.PrepareMethod(method.MethodHandle, [result.TypeHandle, type.TypeHandle]);
                        prepared++;
                    }
                }
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException)
            {
                // Compiled at the first wait instead.
            }
        }

        return prepared;
    }

    private static int TryPrepare(MethodInfo definition, Type[] arguments)
    {
        try
        {
            var method = definition.MakeGenericMethod(arguments);
            var owner = method.DeclaringType!;
            RuntimeHelpers.PrepareMethod(method.MethodHandle, [.. owner.GetGenericArguments().Select(t => t.TypeHandle), .. arguments.Select(t => t.TypeHandle)]);
            return 1;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException)
        {
            // A constraint the instantiation does not meet: compiled at its first use instead.
            return 0;
        }
    }
}
