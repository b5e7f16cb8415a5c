using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;

namespace NetWire.Appliance;

/// <summary>
/// Compiles ahead the generic instantiations a method calls: <c>HashSet&lt;FlowKey&gt;.Add</c>,
/// <c>Dictionary&lt;int, FlowResetReason&gt;.TryGetValue</c>, <c>Task&lt;byte&gt;.ConfigureAwait</c> and
/// the like, which no precompiled image holds (an instantiation over a value type of another
/// assembly) and which preparing the calling method does not compile. Without this a migration
/// target compiled 40 to 60 of them in its check and apply steps (docs/performance.md, "Gateway
/// flows moved by a migration").
/// </summary>
/// <remarks>
/// How this works: the caller's IL is read for the methods it calls, creates or takes the address
/// of (call, callvirt, newobj, ldftn); each closed generic one is prepared with its instantiation,
/// and its own IL read the same way, <see cref="MaxDepth"/> levels down (the collection's inner
/// helpers). What a call through an interface or a virtual method reaches, and what is created
/// by reflection (a default comparer), is not seen: it is compiled at its first call as before.
/// Best effort: anything that cannot be read or prepared is skipped.
/// </remarks>
internal sealed class GenericCallees
{
    /// <summary>Levels below the caller whose generic callees are followed.</summary>
    public const int MaxDepth = 3;

    private static readonly OpCode[] s_oneByte = new OpCode[256];
    private static readonly OpCode[] s_twoByte = new OpCode[256];

    private readonly HashSet<MethodBase> _seen = [];
    private readonly Dictionary<(Module Module, int Token), MethodBase?> _resolved = [];

    static GenericCallees()
    {
        foreach (var field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            if (field.GetValue(null) is OpCode code)
            {
                var value = (ushort)code.Value;
                if (code.Size == 1)
                {
                    s_oneByte[value] = code;
                }
                else if ((value >> 8) == 0xFE)
                {
                    s_twoByte[value & 0xFF] = code;
                }
            }
        }
    }

    /// <summary>Prepares the closed generic methods <paramref name="caller"/> calls, and theirs; returns how many.</summary>
    public int PrepareCallees(MethodBase caller, int depth)
    {
        byte[]? il;
        try
        {
            il = caller.GetMethodBody()?.GetILAsByteArray();
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or BadImageFormatException or TypeLoadException or MethodAccessException)
        {
            return 0;
        }

        if (il is null)
        {
            return 0;
        }

        var generic = caller.DeclaringType is { IsGenericType: true } || caller.IsGenericMethod;
        var typeArguments = caller.DeclaringType is { IsGenericType: true } owner ? owner.GetGenericArguments() : null;
        var methodArguments = caller.IsGenericMethod ? caller.GetGenericArguments() : null;
        var prepared = 0;
        Type? constrained = null;
        for (var at = 0; at < il.Length;)
        {
            OpCode code;
            if (il[at] == 0xFE && at + 1 < il.Length)
            {
                code = s_twoByte[il[at + 1]];
                at += 2;
            }
            else
            {
                code = s_oneByte[il[at]];
                at++;
            }

            if (code.Size == 0)
            {
                // Not an opcode: the body is not what this reader understands.
                return prepared;
            }

            if (code == OpCodes.Constrained && at + 4 <= il.Length)
            {
                // constrained. T callvirt I::M on a value type T calls T's own M: a struct enumerator's Dispose, a key's GetHashCode.
                constrained = ResolveType(caller.Module, BitConverter.ToInt32(il, at), typeArguments, methodArguments);
            }
            else if (code.OperandType == OperandType.InlineMethod && at + 4 <= il.Length)
            {
                var token = BitConverter.ToInt32(il, at);
                var callee = constrained is { IsValueType: true, IsGenericType: true, ContainsGenericParameters: false } target
                    ? Implementation(target, caller.Module, token, typeArguments, methodArguments)
                    : Resolve(caller.Module, token, generic, typeArguments, methodArguments);
                constrained = null;
                if (callee is not null && _seen.Add(callee))
                {
                    prepared += Prepare(callee);
                    if (depth < MaxDepth)
                    {
                        prepared += PrepareCallees(callee, depth + 1);
                    }
                }
            }

            at += OperandSize(code, il, at);
        }

        return prepared;
    }

    /// <summary>The closed generic method <paramref name="token"/> names, or null (not generic, open, or not resolvable).</summary>
    private MethodBase? Resolve(Module module, int token, bool generic, Type[]? typeArguments, Type[]? methodArguments)
    {
        // A caller that is not generic resolves a token the same way each time.
        if (!generic && _resolved.TryGetValue((module, token), out var known))
        {
            return known;
        }

        MethodBase? method;
        try
        {
            method = module.ResolveMethod(token, typeArguments, methodArguments);
        }
        catch (Exception ex) when (ex is ArgumentException or BadImageFormatException or TypeLoadException or MissingMethodException or FileNotFoundException or NotSupportedException)
        {
            method = null;
        }

        if (method is not null && (!(method.DeclaringType is { IsGenericType: true } || method.IsGenericMethod) || method.ContainsGenericParameters || method.IsAbstract))
        {
            method = null;
        }

        if (!generic)
        {
            _resolved[(module, token)] = method;
        }

        return method;
    }

    private static Type? ResolveType(Module module, int token, Type[]? typeArguments, Type[]? methodArguments)
    {
        try
        {
            return module.ResolveType(token, typeArguments, methodArguments);
        }
        catch (Exception ex) when (ex is ArgumentException or BadImageFormatException or TypeLoadException or FileNotFoundException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>The method of the value type <paramref name="owner"/> that a constrained call to <paramref name="token"/> reaches, or null.</summary>
    private static MethodInfo? Implementation(Type owner, Module module, int token, Type[]? typeArguments, Type[]? methodArguments)
    {
        try
        {
            if (module.ResolveMethod(token, typeArguments, methodArguments) is not MethodInfo { IsGenericMethod: false } called)
            {
                return null;
            }

            if (called.DeclaringType is { IsInterface: true } contract && contract.IsAssignableFrom(owner))
            {
                var map = owner.GetInterfaceMap(contract);
                var index = Array.IndexOf(map.InterfaceMethods, called);
                return index >= 0 && map.TargetMethods[index].DeclaringType == owner ? map.TargetMethods[index] : null;
            }

            var own = owner.GetMethod(called.Name, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly, [.. called.GetParameters().Select(p => p.ParameterType)]);
            return own is { IsAbstract: false } ? own : null;
        }
        catch (Exception ex) when (ex is ArgumentException or BadImageFormatException or TypeLoadException or MissingMethodException or FileNotFoundException or NotSupportedException or AmbiguousMatchException)
        {
            return null;
        }
    }

    private static int Prepare(MethodBase method)
    {
        if ((method.MethodImplementationFlags & MethodImplAttributes.InternalCall) != 0)
        {
            return 0;
        }

        try
        {
            RuntimeTypeHandle[] instantiation =
            [
                .. method.DeclaringType is { IsGenericType: true } owner ? owner.GetGenericArguments().Select(t => t.TypeHandle) : [],
                .. method.IsGenericMethod ? method.GetGenericArguments().Select(t => t.TypeHandle) : [],
            ];
            RuntimeHelpers.PrepareMethod(method.MethodHandle, instantiation);
            return 1;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or BadImageFormatException or TypeLoadException or MissingMethodException)
        {
            // Compiled at its first call instead.
            return 0;
        }
    }

    private static int OperandSize(OpCode code, byte[] il, int at) => code.OperandType switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        OperandType.InlineSwitch => at + 4 <= il.Length && BitConverter.ToInt32(il, at) is >= 0 and < 1 << 20 and var n ? 4 + (4 * n) : il.Length,
        _ => 4,
    };
}
