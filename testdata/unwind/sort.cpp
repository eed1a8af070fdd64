// sort-cpp sorts vectors with std::sort and a comparator object that burns
// CPU, at -O2 without frame pointers: stacks run
// Slow::operator() <- (std::sort internals, inlined or not) <- sort_round <- run <- main.
//
// Usage: sort-cpp [seconds]   (default 10)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <vector>

static volatile uint64_t sink;

struct Slow {
	__attribute__((noinline)) bool operator()(uint64_t x, uint64_t y) const {
		uint64_t a = x, b = y;
		for (int i = 0; i < 200; i++) {
			a ^= a << 13;
			a ^= a >> 7;
			a ^= a << 17;
			b ^= b << 13;
			b ^= b >> 7;
			b ^= b << 17;
		}
		sink += a ^ b;
		return x < y;
	}
};

__attribute__((noinline)) void sort_round(std::vector<uint64_t> &v, uint64_t seed) {
	for (auto &x : v) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		x = seed;
	}
	std::sort(v.begin(), v.end(), Slow{});
}

__attribute__((noinline)) void run(std::chrono::steady_clock::time_point end) {
	std::vector<uint64_t> v(4096);
	uint64_t seed = 88172645463325252ull;
	while (std::chrono::steady_clock::now() < end)
		sort_round(v, seed++);
}

int main(int argc, char **argv) {
	int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
	run(std::chrono::steady_clock::now() + std::chrono::seconds(seconds));
	return 0;
}
