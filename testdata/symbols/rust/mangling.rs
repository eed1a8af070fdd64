// mangling has a generic method in nested modules, built twice: with
// Rust's legacy symbol mangling and with v0 (-C symbol-mangling-version=v0).
#![no_std]
#![no_main]

pub mod ember {
    pub mod detail {
        pub struct Hasher<T>(pub T);

        impl Hasher<u64> {
            #[inline(never)]
            pub fn mix(&self, x: u64) -> u64 {
                let x = x ^ (x << 13) ^ self.0; // RUST_MIX_LINE
                x ^ (x >> 7)
            }
        }
    }

    #[inline(never)]
    pub fn run(x: u64) -> u64 {
        detail::Hasher(x).mix(x) // RUST_RUN_LINE
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[no_mangle]
pub extern "C" fn main(argc: i32, _argv: *const *const u8) -> i32 {
    (ember::run(argc as u64) & 1) as i32
}
