//! The real `wanwatch` binary, built inside the test crate so that its
//! end-to-end tests can run it (`CARGO_BIN_EXE_wanwatch`).
fn main() -> std::process::ExitCode {
    wanwatch::cli::main()
}
