using BenchmarkDotNet.Running;

// Run: dotnet run -c Release --project bench/PrivateMl.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
