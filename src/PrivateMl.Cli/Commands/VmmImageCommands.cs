using System.CommandLine;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Cli.Commands;

/// <summary>
/// <c>privateml vmm image build-dev DIR</c>: builds the development guest image (Debian kernel, busybox initramfs,
/// self-contained privateml) that <c>vmm deploy --no-tee</c> boots under QEMU. <see cref="Create"/> is the
/// <c>image</c> group to add under <c>vmm</c>.
/// </summary>
internal static class VmmImageCommands
{
    public static Command Create() => new("image", "Guest images") { CreateBuildDev() };

    public static Command CreateBuildDev()
    {
        var dir = new Argument<string>("DIR") { Description = "Image directory to write (e.g. ~/.privateml/vmm/images/dev)" };
        var cache = new Option<string>("--cache") { Description = "Cache for the kernel package, its unpacked files and the publish output", DefaultValueFactory = _ => DevImageOptions.DefaultCacheDirectory };
        var kernelDeb = new Option<FileInfo>("--kernel-deb") { Description = "Use this linux-image .deb instead of downloading linux-image-amd64's kernel with apt-get" };
        var publishDir = new Option<DirectoryInfo>("--publish-dir") { Description = "A self-contained linux-x64 privateml already published (default: publish from the source tree)" };
        var source = new Option<DirectoryInfo>("--source") { Description = "The PrivateMl repository to publish privateml from (default: found above the current directory)" };
        var busybox = new Option<string>("--busybox") { Description = "Statically linked busybox (package busybox-static)", DefaultValueFactory = _ => "/bin/busybox" };
        var version = new Option<string>("--image-version") { Description = "version in metadata.json", DefaultValueFactory = _ => "0.5.5" };
        var simulator = new Option<DirectoryInfo>("--simulator") { Description = "SIMULATED TDX platform to bake in (default <cache>/tdx-simulator, created once); the host KMS trusts it with kms serve --simulate --simulator DIR/tdx-simulator" };
        var quiet = new Option<bool>("--quiet") { Description = "Print only the image directory" };
        var command = new Command("build-dev", "Build the development guest image (Debian kernel + busybox + self-contained privateml; boots with deploy --no-tee)")
        {
            dir, cache, kernelDeb, publishDir, source, busybox, version, simulator, quiet,
        };
        command.SetAction(parse =>
        {
            var output = parse.InvocationConfiguration.Output;
            try
            {
                var result = DevImageBuilder.Build(new DevImageOptions
                {
                    OutputDirectory = parse.GetValue(dir)!,
                    CacheDirectory = parse.GetValue(cache)!,
                    KernelDeb = parse.GetValue(kernelDeb)?.FullName,
                    PublishDirectory = parse.GetValue(publishDir)?.FullName,
                    SourceDirectory = parse.GetValue(source)?.FullName,
                    BusyboxPath = parse.GetValue(busybox)!,
                    Version = parse.GetValue(version)!,
                    SimulatorDirectory = parse.GetValue(simulator)?.FullName,
                    Log = parse.GetValue(quiet) ? null : output,
                });
                output.WriteLine(parse.GetValue(quiet)
                    ? result.ImageDirectory
                    : $"development image {(result.Reused ? "up to date" : "built")}: {result.ImageDirectory} (kernel {result.KernelVersion}, os_image_hash {result.OsImageHash})\n"
                        + $"SIMULATED TDX platform for the host KMS: privateml kms serve --simulate --simulator {Path.Combine(result.ImageDirectory, DevImageBuilder.SimulatorDirectoryName)}");
                return ExitCodes.Accepted;
            }
            catch (Exception e) when (e is DevImageException or IOException or UnauthorizedAccessException)
            {
                parse.InvocationConfiguration.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}

/// <summary>Adds <c>vmm image build-dev</c> through the hook <see cref="VmmCommands"/> declares.</summary>
internal static partial class VmmCommands
{
    static partial void AddImageCommands(Command vmm) => vmm.Subcommands.Add(VmmImageCommands.Create());
}
