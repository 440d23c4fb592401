using PrivateMl.Inference.Models;

[assembly: AssemblyFixture(typeof(PrivateMl.Inference.Tests.DemoModelFile))]

namespace PrivateMl.Inference.Tests;

/// <summary>The demo GGUF (seed 42) written once per test run to a temporary folder.</summary>
public sealed class DemoModelFile : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("privateml-inference-").FullName;

    public DemoModelFile()
    {
        Path = System.IO.Path.Combine(directory, "demo.gguf");
        DemoModelWriter.Write(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
