//! The `batchsample` command line. Every failure is one line on stderr and exit code 2.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::parse() {
        Ok(args) => args,
        Err(code) => return code,
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchsample: {}", cli::one_line(&e));
            ExitCode::from(2)
        }
    }
}
