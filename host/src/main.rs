fn main() -> std::process::ExitCode {
    wanwatch::cli::main()
}
