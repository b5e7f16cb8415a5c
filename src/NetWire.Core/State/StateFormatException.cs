namespace NetWire.Core.State;

/// <summary>A state stream or one of its sections is not acceptable; the message says where and why.</summary>
public sealed class StateFormatException : Exception
{
    /// <summary>A malformed stream, without details.</summary>
    public StateFormatException()
        : this("malformed state stream")
    {
    }

    /// <summary>A stream or section refused for the reason in <paramref name="message"/>.</summary>
    public StateFormatException(string message)
        : base(message)
    {
    }

    /// <summary>A stream or section refused for the reason in <paramref name="message"/>, found through <paramref name="innerException"/>.</summary>
    public StateFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
