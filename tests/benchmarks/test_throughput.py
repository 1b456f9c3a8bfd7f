from benchmarks.throughput import main


def test_throughput_smoke():
    results = main(["--smoke-test"])
    (fast, slow), = results.values()
    assert fast > 0 and slow > 0
