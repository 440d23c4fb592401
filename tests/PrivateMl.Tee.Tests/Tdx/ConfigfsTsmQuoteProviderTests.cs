using PrivateMl.Tee.Tdx;

namespace PrivateMl.Tee.Tests.Tdx;

public class ConfigfsTsmQuoteProviderTests
{
    private const string Root = "/sys/kernel/config/tsm/report";

    [Fact]
    public async Task Returns_QuoteOverRequestedReportData_AndRemovesItsEntry()
    {
        var fake = new FakeConfigfsTsm(Root);
        var provider = new ConfigfsTsmQuoteProvider(Root, fake);
        var reportData = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray();

        var quote = await provider.GetQuoteAsync(reportData, TestContext.Current.CancellationToken);

        Assert.Equal(reportData, quote.AsSpan(568, 64).ToArray());
        Assert.Equal("tdx_guest", provider.LastProvider);
        Assert.Equal(1, fake.EntriesCreated);
        Assert.Equal(0, fake.EntryCount);
    }

    [Fact]
    public async Task UsesTheGivenRoot()
    {
        var fake = new FakeConfigfsTsm("/tmp/elsewhere/tsm/report");
        var provider = new ConfigfsTsmQuoteProvider("/tmp/elsewhere/tsm/report/", fake);

        await provider.GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken);

        Assert.Equal("/tmp/elsewhere/tsm/report", provider.ReportRoot);
        Assert.Equal(1, fake.EntriesCreated);
    }

    [Fact]
    public async Task Rejects_RacingWriterBeforeOutblobRead()
    {
        var fake = new FakeConfigfsTsm(Root);
        var raced = false;
        fake.BeforeRead = (entry, attribute) =>
        {
            if (attribute == "outblob" && !raced)
            {
                raced = true;
                fake.WriteFile(entry + "/inblob", new byte[64]); // another process's request
            }
        };
        var provider = new ConfigfsTsmQuoteProvider(Root, fake);

        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => provider.GetQuoteAsync(Filled(7), TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.GenerationMismatch, e.Error);
        Assert.Equal(0, fake.EntryCount);
    }

    [Fact]
    public async Task Rejects_RacingWriterBetweenOutblobAndGenerationReads()
    {
        var fake = new FakeConfigfsTsm(Root);
        var reads = 0;
        fake.BeforeRead = (entry, attribute) =>
        {
            if (attribute == "generation" && ++reads == 3)
            {
                fake.WriteFile(entry + "/inblob", Filled(7)); // even the same bytes: the generation still moves
            }
        };
        var provider = new ConfigfsTsmQuoteProvider(Root, fake);

        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => provider.GetQuoteAsync(Filled(7), TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(TdxDeviceError.GenerationMismatch, e.Error);
    }

    [Fact]
    public async Task Rejects_WrongProvider()
    {
        var fake = new FakeConfigfsTsm(Root) { Provider = "sev_guest\n" };
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.WrongProvider, e.Error);
        Assert.Equal(0, fake.EntryCount);
    }

    [Fact]
    public async Task Rejects_QuoteOverOtherReportData()
    {
        var fake = new FakeConfigfsTsm(Root) { MakeQuote = _ => FakeConfigfsTsm.FakeQuote(new byte[64]) };
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(Filled(1), TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.InvalidQuote, e.Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(631)]
    public async Task Rejects_OutblobThatIsNotAQuote(int length)
    {
        var fake = new FakeConfigfsTsm(Root) { MakeQuote = inblob => FakeConfigfsTsm.FakeQuote(inblob)[..length] };
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.InvalidQuote, e.Error);
    }

    [Fact]
    public async Task Rejects_OversizedOutblob()
    {
        var fake = new FakeConfigfsTsm(Root) { MakeQuote = inblob => [.. FakeConfigfsTsm.FakeQuote(inblob), .. new byte[ConfigfsTsmQuoteProvider.MaxQuoteBytes]] };
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.InvalidQuote, e.Error);
        Assert.Equal(0, fake.EntryCount);
    }

    [Fact]
    public async Task MissingRoot_IsNotPresent_AndNamesThePath()
    {
        var fake = new FakeConfigfsTsm("/somewhere/else");
        var e = await Assert.ThrowsAsync<TdxDeviceException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(new byte[64], TestContext.Current.CancellationToken).AsTask());

        Assert.Equal(TdxDeviceError.NotPresent, e.Error);
        Assert.Contains(Root, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(63)]
    [InlineData(65)]
    public async Task Rejects_ReportDataThatIsNot64Bytes(int length)
    {
        var fake = new FakeConfigfsTsm(Root);
        await Assert.ThrowsAsync<ArgumentException>(() => new ConfigfsTsmQuoteProvider(Root, fake).GetQuoteAsync(new byte[length], TestContext.Current.CancellationToken).AsTask());
        Assert.Equal(0, fake.EntriesCreated);
    }

    [Fact]
    public async Task ConcurrentRequests_EachGetTheirOwnQuote()
    {
        var fake = new FakeConfigfsTsm(Root);
        var provider = new ConfigfsTsmQuoteProvider(Root, fake);

        var quotes = await Task.WhenAll(Enumerable.Range(0, 32).Select(i => provider.GetQuoteAsync(Filled((byte)i)).AsTask()));

        for (var i = 0; i < quotes.Length; i++)
        {
            Assert.Equal(Filled((byte)i), quotes[i].AsSpan(568, 64).ToArray());
        }

        Assert.Equal(0, fake.EntryCount);
    }

    // The fake's own rules, which the provider relies on.
    [Fact]
    public void Fake_FollowsKernelRules()
    {
        var fake = new FakeConfigfsTsm(Root);
        fake.CreateDirectory(Root + "/e");
        Assert.Equal("0\n", System.Text.Encoding.ASCII.GetString(fake.ReadFile(Root + "/e/generation", 16)));
        Assert.Equal(Errno.EINVAL, Assert.Throws<IOException>(() => fake.ReadFile(Root + "/e/outblob", 4096)).HResult);
        Assert.Equal(Errno.EINVAL, Assert.Throws<IOException>(() => fake.WriteFile(Root + "/e/inblob", new byte[65])).HResult);
        fake.WriteFile(Root + "/e/inblob", new byte[64]);
        fake.WriteFile(Root + "/e/privlevel", "2\n"u8);
        Assert.Equal("2\n", System.Text.Encoding.ASCII.GetString(fake.ReadFile(Root + "/e/generation", 16)));
        Assert.Throws<IOException>(() => fake.CreateDirectory(Root + "/e/nested"));
        fake.RemoveDirectory(Root + "/e");
        Assert.Throws<FileNotFoundException>(() => fake.ReadFile(Root + "/e/generation", 16));
    }

    private static byte[] Filled(byte value) => Enumerable.Repeat(value, 64).ToArray();
}
