using System.Diagnostics;
using System.Text.RegularExpressions;

namespace PrivateMl.Vmm.Qemu;

/// <summary>What this host's QEMU and kernel can do (probed once; tests construct it directly).</summary>
/// <param name="QemuPath">The emulator found, or null when none is installed.</param>
/// <param name="QemuVersion">From <c>qemu --version</c>, e.g. "7.2.19".</param>
/// <param name="QemuHasTdx">QEMU knows the <c>tdx-guest</c> object (upstream QEMU 10.1+; Debian 12's 7.2 does not).</param>
/// <param name="KvmUsable">/dev/kvm can be opened and the CPU shows vmx or svm (else TCG).</param>
/// <param name="KvmHasTdx">kvm_intel was loaded with tdx=Y.</param>
public sealed record HostCapabilities(string? QemuPath, string? QemuVersion, bool QemuHasTdx, bool KvmUsable, bool KvmHasTdx)
{
    public bool CanRunTdx => QemuPath is not null && QemuHasTdx && KvmUsable && KvmHasTdx;

    /// <summary>Why TDX cannot run here, in one sentence, or null when it can.</summary>
    public string? TdxRefusal()
    {
        if (QemuPath is null)
        {
            return "no qemu-system-x86_64 on this host";
        }

        if (!QemuHasTdx)
        {
            return $"this host's QEMU {QemuVersion ?? "(unknown version)"} cannot run TDX guests (no tdx-guest object; upstream QEMU gained TDX in 10.1)";
        }

        if (!KvmUsable)
        {
            return "KVM is not usable on this host (no /dev/kvm access or no vmx/svm CPU flag)";
        }

        return KvmHasTdx ? null : "KVM on this host was not loaded with TDX (kvm_intel tdx=Y)";
    }

    /// <summary>Probes the host: finds qemu (the configured path, else on PATH), asks it for its version and objects.</summary>
    public static HostCapabilities Probe(string? qemuPath = null, string procRoot = "/proc", string sysRoot = "/sys", string devKvm = "/dev/kvm")
    {
        var qemu = FindQemu(qemuPath);
        string? version = null;
        var hasTdx = false;
        if (qemu is not null)
        {
            var versionText = Run(qemu, "--version");
            var m = versionText is null ? null : Regex.Match(versionText, @"version (\d+\.\d+(?:\.\d+)?)");
            version = m is { Success: true } ? m.Groups[1].Value : null;
            hasTdx = Run(qemu, "-object", "help") is { } objects && objects.Contains("tdx-guest", StringComparison.Ordinal);
        }

        return new HostCapabilities(qemu, version, hasTdx, IsKvmUsable(procRoot, devKvm), ReadFlag(Path.Combine(sysRoot, "module", "kvm_intel", "parameters", "tdx")));
    }

    /// <summary>KVM counts only when /dev/kvm opens read-write and /proc/cpuinfo lists vmx or svm (dev-vm.md: a /dev/kvm without them is unusable).</summary>
    public static bool IsKvmUsable(string procRoot = "/proc", string devKvm = "/dev/kvm")
    {
        try
        {
            var cpuinfo = File.ReadAllText(Path.Combine(procRoot, "cpuinfo"));
            var flags = cpuinfo.Split('\n').Where(l => l.StartsWith("flags", StringComparison.Ordinal)).SelectMany(l => l.Split(' ', '\t'));
            if (!flags.Any(f => f is "vmx" or "svm"))
            {
                return false;
            }

            using var kvm = new FileStream(devKvm, FileMode.Open, FileAccess.ReadWrite);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static bool ReadFlag(string path)
    {
        try
        {
            return File.Exists(path) && File.ReadAllText(path).Trim() is "Y" or "y" or "1";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string? FindQemu(string? configured)
    {
        if (!string.IsNullOrEmpty(configured))
        {
            return File.Exists(configured) ? Path.GetFullPath(configured) : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "qemu-system-x86_64");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static string? Run(string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
            foreach (var a in args)
            {
                info.ArgumentList.Add(a);
            }

            using var process = Process.Start(info);
            if (process is null)
            {
                return null;
            }

            process.StandardInput.Close();
            var stdoutTask = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(10_000))
            {
                process.Kill();
                return null;
            }

            return stdoutTask.GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return null;
        }
    }
}
