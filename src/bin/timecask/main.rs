//! The `timecask` command-line tool. For now it runs the quick-start demo;
//! the full inspection CLI (tables, get, history, log, diff, ...) is the
//! next piece of work.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: timecask demo [DIR]

  demo [DIR]   run the quick-start scenario (in DIR, or a temporary directory)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo"] => demo::run(None),
        ["demo", dir] => demo::run(Some(PathBuf::from(dir))),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
