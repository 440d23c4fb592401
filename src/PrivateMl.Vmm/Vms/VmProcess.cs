using System.Diagnostics;
using System.Runtime.InteropServices;

namespace PrivateMl.Vmm.Vms;

/// <summary>
/// Starts and ends a VM's qemu. qemu runs in its own session (<c>setsid</c>), stdin from /dev/null, stdout/stderr
/// appended to the work directory's stdout.log/stderr.log, so it outlives a restart of the service; its pid goes to
/// qemu.pid. A pid counts as the VM only while /proc/&lt;pid&gt;/cmdline still names the work directory (no pid reuse).
/// </summary>
internal static partial class VmProcess
{
    private const int SigTerm = 15;
    private const int SigKill = 9;

    /// <summary>Launches <paramref name="argv"/>; returns the pid (which is qemu's: sh and setsid exec in place).</summary>
    public static Process Launch(IReadOnlyList<string> argv, VmWorkDir workDir)
    {
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = workDir.Path };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec setsid \"$0\" \"$@\" </dev/null >>\"$PML_VM_STDOUT\" 2>>\"$PML_VM_STDERR\"");
        foreach (var arg in argv)
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["PML_VM_STDOUT"] = workDir.StdoutLog;
        info.Environment["PML_VM_STDERR"] = workDir.StderrLog;
        try
        {
            var process = Process.Start(info) ?? throw new VmmException(VmmErrorCode.LaunchFailed, "qemu did not start");
            File.WriteAllText(workDir.PidFile, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            return process;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new VmmException(VmmErrorCode.LaunchFailed, $"cannot start qemu: {e.Message}");
        }
    }

    /// <summary>The pid in qemu.pid when that process is alive and is this VM's, else null.</summary>
    public static int? RunningPid(VmWorkDir workDir, string procRoot = "/proc")
    {
        try
        {
            if (!File.Exists(workDir.PidFile) || !int.TryParse(File.ReadAllText(workDir.PidFile).Trim(), out var pid) || pid <= 1)
            {
                return null;
            }

            var dir = Path.Combine(procRoot, pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var stat = File.ReadAllText(Path.Combine(dir, "stat"));
            var state = stat.LastIndexOf(')') is var close and > 0 && close + 2 < stat.Length ? stat[close + 2] : '?';
            if (state is 'Z' or 'X')
            {
                return null;
            }

            var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline"));
            return cmdline.Contains(workDir.Path, StringComparison.Ordinal) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Ends the VM: SIGTERM (graceful) or SIGKILL, then waits until /proc says it is gone.</summary>
    public static async Task<bool> StopAsync(VmWorkDir workDir, bool force, TimeSpan wait, string procRoot, CancellationToken cancellationToken)
    {
        if (RunningPid(workDir, procRoot) is not { } pid)
        {
            return true;
        }

        _ = Kill(pid, force ? SigKill : SigTerm);
        var deadline = DateTime.UtcNow + wait;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(50, cancellationToken);
            if (RunningPid(workDir, procRoot) is null)
            {
                return true;
            }
        }

        if (!force)
        {
            _ = Kill(pid, SigKill);
            for (var k = 0; k < 100 && RunningPid(workDir, procRoot) is not null; k++)
            {
                await Task.Delay(50, cancellationToken);
            }
        }

        return RunningPid(workDir, procRoot) is null;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
