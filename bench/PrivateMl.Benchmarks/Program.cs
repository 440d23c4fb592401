using PrivateMl.Benchmarks;

// BenchmarkDotNet suites: dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*'
// Side-by-side loop (same method as bench/dcap-peers/peers.mjs): ... -- side-by-side QUOTE COLLATERAL NOW [SECONDS]
// Mutation soak: ... -- mutate COUNT [SEED]
return args.FirstOrDefault() switch
{
    "side-by-side" => DcapSideBySide.Run(args[1..]),
    "mutate" => DcapMutationSoak.Run(args[1..]),
    _ => RunBenchmarkDotNet(args),
};

static int RunBenchmarkDotNet(string[] args)
{
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(DcapSideBySide).Assembly).Run(args);
    return 0;
}
