// The C++ long-lived program of bench/busyhost.sh: soak::Mixer::hot_a (60%)
// and soak::Mixer::hot_b (40%), CPU-MS of work every PERIOD-MS.
//
// Usage: burn-cpp CPU-MS PERIOD-MS
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <thread>

namespace soak {

class Mixer {
  public:
	__attribute__((noinline)) void hot_a() { state_ = spin(state_, 300000); }
	__attribute__((noinline)) void hot_b() { state_ = spin(state_, 200000); }
	uint64_t state() const { return state_; }

  private:
	static uint64_t spin(uint64_t x, int n) {
		for (int i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		return x;
	}
	volatile uint64_t state_ = 88172645463325252ULL;
};

double cpu_ms() {
	timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

} // namespace soak

int main(int argc, char **argv) {
	double ms = argc > 1 ? std::atof(argv[1]) : 5;
	auto period = std::chrono::microseconds(static_cast<long>((argc > 2 ? std::atof(argv[2]) : 100) * 1000));
	soak::Mixer m;
	auto next = std::chrono::steady_clock::now();
	for (;;) {
		double end = soak::cpu_ms() + ms;
		while (soak::cpu_ms() < end) {
			m.hot_a();
			m.hot_b();
		}
		next += period;
		std::this_thread::sleep_until(next);
	}
}
