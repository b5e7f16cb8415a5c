namespace NetWire.Core.State;

/// <summary>A state stream or one of its sections is not acceptable; the message says where and why.</summary>
public sealed class StateFormatException : Exception
{
    public StateFormatException()
        : this("malformed state stream")
    {
    }

    public StateFormatException(string message)
        : base(message)
    {
    }

    public StateFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
