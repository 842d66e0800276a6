//! Marks the library "nodelete" on Linux: `dlclose` never unmaps it.
//!
//! Deno closes a `Deno.dlopen` library when the isolate that opened it ends (`deno test` runs
//! each test file in its own). Threads of Deno's blocking pool that ran our nonblocking calls
//! (`ssd_channel_wait`) carry thread-local destructors that point into this library; when such
//! a thread exited after the library was unmapped, the process crashed (SIGSEGV in
//! `__nptl_deallocate_tsd`, reproduced with `deno test` over the OAuth conformance files). With
//! `-z nodelete` the next `dlopen` of the same file finds the library still loaded, statics
//! included, exactly as Workers in one process already share it.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-cdylib=-Wl,-z,nodelete");
    }
}
