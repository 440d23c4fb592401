using System.Diagnostics;
using PrivateMl.Testing;

namespace PrivateMl.Vmm.Tests.Support;

/// <summary>Runs CPython as an oracle for <c>json.dumps</c> (the producer of vmm-cli's app-compose.json); skips when absent.</summary>
internal static class Python
{
    public static byte[] Run(string script, string? stdin = null)
    {
        ProcessStartInfo info = new("python3") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        info.Environment["PYTHONIOENCODING"] = "utf-8";
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            const string Reason = "python3 is not installed; the json.dumps oracle test is skipped";
            if (Environment.GetEnvironmentVariable(SharedTestData.RequireVariable) == "1")
            {
                Assert.Fail(Reason + $", but {SharedTestData.RequireVariable}=1 requires it");
            }

            Assert.Skip(Reason);
            throw;
        }

        using (process)
        {
            process.StandardInput.Write(stdin ?? "");
            process.StandardInput.Close();
            using var output = new MemoryStream();
            var copy = process.StandardOutput.BaseStream.CopyToAsync(output);
            var error = process.StandardError.ReadToEndAsync();
            Assert.True(process.WaitForExit(60_000), "python3 did not finish");
            copy.GetAwaiter().GetResult();
            Assert.True(process.ExitCode == 0, error.GetAwaiter().GetResult());
            return output.ToArray();
        }
    }
}
