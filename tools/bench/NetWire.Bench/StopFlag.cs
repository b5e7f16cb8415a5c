namespace NetWire.Bench;

/// <summary>A flag load threads poll between batches; set once by the measuring thread.</summary>
internal sealed class StopFlag
{
    /// <summary>1 once set.</summary>
    private int _set;

    /// <summary>True once <see cref="Set"/> was called.</summary>
    public bool IsSet => Volatile.Read(ref _set) != 0;

    /// <summary>Asks every load loop to finish its batch and return.</summary>
    public void Set() => Volatile.Write(ref _set, 1);
}
