using System.Runtime;

namespace NetWire.Appliance.Tests;

/// <summary>
/// The compile-ahead step: a method that implements an interface, and the generic instantiations
/// it calls over a value type, are compiled before their first call (docs/performance.md,
/// "Gateway flows moved by a migration": a migration target compiled its sections' Read and the
/// collections over flow keys in the middle of the handover).
/// </summary>
public sealed class CodeWarmupTests
{
    public interface IProbe
    {
        int Read(int count);
    }

    [Fact]
    public void InterfaceMethodAndItsGenericCallees_AreCompiledAhead_ThoseOfAnUnpreparedTwinAreNot()
    {
        // The twin nobody prepared: its first call compiles Read and Dictionary<int, ColdKey>'s methods on this thread.
        IProbe cold = new ColdProbe();
        var before = JitInfo.GetCompiledMethodCount(currentThread: true);
        var coldSum = cold.Read(3);
        var coldCompiled = JitInfo.GetCompiledMethodCount(currentThread: true) - before;

        // As the appliance's own assemblies are prepared whole: the probe and its key type.
        Assert.True(CodeWarmup.PrepareTypes(typeof(WarmProbe), typeof(WarmKey)) > 1);
        IProbe warm = new WarmProbe();
        before = JitInfo.GetCompiledMethodCount(currentThread: true);
        var warmSum = warm.Read(3);
        var warmCompiled = JitInfo.GetCompiledMethodCount(currentThread: true) - before;

        Assert.Equal(coldSum, warmSum);
        Assert.True(coldCompiled >= 3, $"the unprepared twin's first call compiled {coldCompiled} methods");
        Assert.Equal(0, warmCompiled);
    }

    private readonly record struct ColdKey(int A, long B);

    private readonly record struct WarmKey(int A, long B);

    private sealed class ColdProbe : IProbe
    {
        public int Read(int count)
        {
            var keys = new Dictionary<int, ColdKey>();
            for (var i = 0; i < count; i++)
            {
                keys.TryAdd(i, new ColdKey(i, i * 2L));
            }

            var sum = 0;
            foreach (var (_, key) in keys)
            {
                sum += key.A;
            }

            return sum + keys.Count;
        }
    }

    private sealed class WarmProbe : IProbe
    {
        public int Read(int count)
        {
            var keys = new Dictionary<int, WarmKey>();
            for (var i = 0; i < count; i++)
            {
                keys.TryAdd(i, new WarmKey(i, i * 2L));
            }

            var sum = 0;
            foreach (var (_, key) in keys)
            {
                sum += key.A;
            }

            return sum + keys.Count;
        }
    }
}
