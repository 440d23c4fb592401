using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace PrivateMl.Agent.Hosting;

/// <summary>
/// Socket-file housekeeping (dotnet.md §8): Kestrel cannot bind over a stale socket file, and creates the file with
/// the process umask while dstack's sockets are 0777.
/// </summary>
internal static class UnixSocketFile
{
    /// <summary>
    /// Makes <paramref name="path"/> bindable: creates the directory, removes a stale socket (nobody answers), and
    /// refuses when another process is serving there or the path is a non-empty regular file.
    /// </summary>
    public static void PrepareForBind(string path, ILogger logger)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }

        var info = new FileInfo(path);
        if (!info.Exists)
        {
            if (Directory.Exists(path))
            {
                throw new IOException($"{path} is a directory, not a socket path");
            }

            return;
        }

        if (IsServed(path))
        {
            throw new IOException($"another process is already serving on {path}");
        }

        if (info.Length > 0)
        {
            throw new IOException($"{path} is a regular file with content, not a stale socket; refusing to delete it");
        }

        File.Delete(path);
        AgentLog.RemovedStaleSocket(logger, path);
    }

    /// <summary>Opens the socket to everyone, as dstack does (apps in containers run as any user).</summary>
    public static void MakeWorldAccessible(string path)
    {
        if (!OperatingSystem.IsWindows() && File.Exists(path))
        {
            File.SetUnixFileMode(path, (UnixFileMode)0x1FF);
        }
    }

    private static bool IsServed(string path)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
