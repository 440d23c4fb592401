using System.Diagnostics;
using System.Text;

namespace PrivateMl.Vmm.DevImage;

/// <summary>Runs the host tools the image build uses (apt-get, apt-cache, dpkg, dotnet, ldd) and finds them on PATH.</summary>
internal static class HostTools
{
    /// <summary>Full path of <paramref name="command"/> on PATH (or the path itself when it has a slash), or null.</summary>
    public static string? Find(string command)
    {
        if (command.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(command) ? Path.GetFullPath(command) : null;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, command);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Runs a command to completion; a non-zero exit is a <see cref="DevImageException"/> carrying its output tail.</summary>
    public static string Run(string command, IEnumerable<string> arguments, string? workingDirectory = null, TextWriter? log = null)
    {
        var path = Find(command) ?? throw new DevImageException($"'{command}' is not installed (not on PATH)");
        var start = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var output = new StringBuilder();
        using var process = new Process { StartInfo = start };
        void Append(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            log?.WriteLine("  | " + e.Data);
        }

        process.OutputDataReceived += Append;
        process.ErrorDataReceived += Append;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.WaitForExit();
        string text;
        lock (output)
        {
            text = output.ToString();
        }

        if (process.ExitCode != 0)
        {
            var tail = text.Length > 4000 ? text[^4000..] : text;
            throw new DevImageException($"{command} {string.Join(' ', start.ArgumentList)} exited with {process.ExitCode}:\n{tail.TrimEnd()}");
        }

        return text;
    }
}
