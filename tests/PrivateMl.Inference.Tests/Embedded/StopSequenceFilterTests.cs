using PrivateMl.Inference.Embedded;

namespace PrivateMl.Inference.Tests.Embedded;

public sealed class StopSequenceFilterTests
{
    [Fact]
    public void HoldsBackPossiblePrefixes_AndCutsAtTheStop()
    {
        var f = new StopSequenceFilter(["END"]);
        Assert.Equal("ab", f.Push("abE"));
        Assert.Equal("", f.Push("N"));
        Assert.Equal("ENx", f.Push("x")); // not the stop after all: released
        Assert.Equal("y", f.Push("yEND tail"));
        Assert.True(f.Stopped);
        Assert.Equal("", f.Push("more"));
        Assert.Equal("", f.Flush());
    }

    [Fact]
    public void EarliestStopWins_AndFlushReleasesHeldText()
    {
        var f = new StopSequenceFilter(["zz", "b"]);
        Assert.Equal("a", f.Push("abzz"));
        var g = new StopSequenceFilter(["xyz"]);
        Assert.Equal("", g.Push("xy"));
        Assert.Equal("xy", g.Flush());
        var none = new StopSequenceFilter([]);
        Assert.Equal("anything", none.Push("anything"));
    }
}
