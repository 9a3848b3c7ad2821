fn main() -> std::process::ExitCode {
    dragon::cli::main()
}
