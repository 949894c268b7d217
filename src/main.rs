//! `maestro-sh`: the governed shell. Also installed as `bash` and `sh` (see `shims/`).
//!
//! `no_main` keeps Rust's runtime start-up out of the way: it would otherwise set SIGPIPE to
//! ignored, which the real shell would inherit through `execve` — a visible difference.
#![no_main]

#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    maestro_sh::entry::main()
}
