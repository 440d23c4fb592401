using System.Globalization;
using System.Text;
using PrivateMl.Vmm.DevImage;

namespace PrivateMl.Vmm.Tests.DevImage;

public sealed class CpioNewcWriterTests
{
    private sealed record Entry(string Name, uint Mode, byte[] Data);

    /// <summary>A minimal newc reader: checks magic, 4-byte alignment and the trailer while reading.</summary>
    private static List<Entry> Read(byte[] archive)
    {
        var entries = new List<Entry>();
        var at = 0;
        while (true)
        {
            Assert.Equal(0, at % 4);
            Assert.Equal("070701", Encoding.ASCII.GetString(archive, at, 6));
            uint Field(int i) => uint.Parse(Encoding.ASCII.GetString(archive, at + 6 + (i * 8), 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            var mode = Field(1);
            var size = (int)Field(6);
            var nameSize = (int)Field(11);
            var name = Encoding.UTF8.GetString(archive, at + 110, nameSize - 1);
            Assert.Equal(0, archive[at + 110 + nameSize - 1]);
            var dataStart = (at + 110 + nameSize + 3) & ~3;
            var data = archive[dataStart..(dataStart + size)];
            at = (dataStart + size + 3) & ~3;
            if (name == "TRAILER!!!")
            {
                Assert.Equal(archive.Length, at);
                return entries;
            }

            entries.Add(new Entry(name, mode, data));
        }
    }

    [Fact]
    public void Writes_files_directories_and_links_the_kernel_can_unpack()
    {
        using var buffer = new MemoryStream();
        using (var cpio = new CpioNewcWriter(buffer))
        {
            cpio.AddFile("init", "#!/bin/sh\n"u8, 0x1ED);
            cpio.AddFile("etc/privateml/modules.order", "a.ko\n"u8);
            cpio.AddSymlink("lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so");
        }

        var entries = Read(buffer.ToArray());
        Assert.Equal(["init", "etc", "etc/privateml", "etc/privateml/modules.order", "lib64", "lib64/ld.so"], entries.Select(e => e.Name));
        Assert.Equal(0x81EDu, entries[0].Mode);
        Assert.Equal("#!/bin/sh\n", Encoding.UTF8.GetString(entries[0].Data));
        Assert.Equal(0x41EDu, entries[1].Mode);
        Assert.Equal(0xA1FFu, entries[5].Mode);
        Assert.Equal("/lib/x86_64-linux-gnu/ld.so", Encoding.UTF8.GetString(entries[5].Data));
    }

    [Fact]
    public void Same_inputs_give_the_same_bytes()
    {
        byte[] Build()
        {
            using var buffer = new MemoryStream();
            using (var cpio = new CpioNewcWriter(buffer))
            {
                cpio.AddFile("a/b", "xyz"u8);
            }

            return buffer.ToArray();
        }

        Assert.Equal(Build(), Build());
    }

    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("a/../../b")]
    [InlineData("")]
    [InlineData("a//b")]
    public void Refuses_paths_that_leave_the_archive_root(string path)
    {
        using var cpio = new CpioNewcWriter(new MemoryStream());
        Assert.Throws<ArgumentException>(() => cpio.AddFile(path, "x"u8));
    }

    [Fact]
    public void Refuses_a_second_file_of_the_same_name()
    {
        using var cpio = new CpioNewcWriter(new MemoryStream());
        cpio.AddFile("init", "1"u8);
        Assert.Throws<ArgumentException>(() => cpio.AddFile("init", "2"u8));
    }
}
