// templates has functions in nested namespaces, a class template and a
// function template, so the symbolizer's demangled names can be checked.
#include <cstdint>
#include <cstdlib>

namespace ember {
namespace detail {

template <typename T>
struct Hasher {
	__attribute__((noinline)) static T mix(T x) {
		x ^= x << 13; // HASHER_MIX_LINE
		return x ^ (x >> 7);
	}
};

template <typename T>
__attribute__((noinline)) T twice(T x) {
	return Hasher<T>::mix(Hasher<T>::mix(x)); // TWICE_LINE
}

}  // namespace detail

__attribute__((noinline)) uint64_t run(uint64_t x) {
	return detail::twice<uint64_t>(x) + detail::twice<uint32_t>(uint32_t(x)); // RUN_LINE
}

}  // namespace ember

int main(int argc, char **) {
	return int(ember::run(uint64_t(argc)) & 1);
}
