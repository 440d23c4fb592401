using Xunit;

namespace PrivateMl.Testing;

/// <summary>
/// Locates the real test vectors in <c>../shared/testdata</c> beside the repository. They are never copied into the
/// repository: on a user's clone, where <c>../shared</c> is absent, tests that need them skip with that reason; under
/// <c>.ci/run</c> (which sets PRIVATEML_REQUIRE_SHARED=1) their absence is a failure.
/// </summary>
public static class SharedTestData
{
    public const string RequireVariable = "PRIVATEML_REQUIRE_SHARED";

    private static readonly Lazy<string?> Root = new(FindRoot);

    /// <summary>The repository root (the folder holding global.json).</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>Full path of a file under ../shared/testdata, or skips (fails under CI) when the folder is absent.</summary>
    public static string PathOf(string relativePath)
    {
        var root = Root.Value;
        if (root is null)
        {
            var reason = $"../shared/testdata is absent (looked beside {RepositoryRoot}); real-vector test skipped";
            if (Environment.GetEnvironmentVariable(RequireVariable) == "1")
            {
                Assert.Fail(reason + $", but {RequireVariable}=1 requires it");
            }

            Assert.Skip(reason);
        }

        var path = Path.Combine(root!, relativePath);
        Assert.True(File.Exists(path) || Directory.Exists(path), $"missing shared test vector {path}");
        return path;
    }

    public static byte[] ReadBytes(string relativePath) => File.ReadAllBytes(PathOf(relativePath));

    public static string ReadText(string relativePath) => File.ReadAllText(PathOf(relativePath));

    /// <summary>True when ../shared/testdata exists (for MemberData providers that must not throw).</summary>
    public static bool IsPresent => Root.Value is not null;

    private static string? FindRoot()
    {
        var candidate = Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "testdata"));
        return Directory.Exists(candidate) ? candidate : null;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "global.json")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("could not find the repository root (global.json) above " + AppContext.BaseDirectory);
    }
}
