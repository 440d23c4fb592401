namespace PrivateMl.Vmm.DevImage;

/// <summary>A development image could not be built; the message says which step failed and why.</summary>
public sealed class DevImageException : Exception
{
    public DevImageException()
    {
    }

    public DevImageException(string message)
        : base(message)
    {
    }

    public DevImageException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
