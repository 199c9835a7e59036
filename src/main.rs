#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sluis::cli::main()
}
