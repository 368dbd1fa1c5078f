//! Git-style external subcommands: `timecask replicate|restore|follow ...`
//! run `timecask-replicate` from PATH (the `replicate/` crate), so the
//! object-store client stays out of this binary.

use std::ffi::OsString;
use std::process::ExitCode;

/// The subcommands another program provides, and that program.
const EXTERNAL: &[(&str, &str)] = &[
    ("replicate", "timecask-replicate"),
    ("restore", "timecask-replicate"),
    ("follow", "timecask-replicate"),
];

/// Runs the external program if `args` (without the program name) start
/// with one of its subcommands; `None` otherwise.
pub fn dispatch(args: &[OsString]) -> Option<ExitCode> {
    let first = args.first()?.to_str()?;
    let &(_, program) = EXTERNAL.iter().find(|(name, _)| *name == first)?;
    match std::process::Command::new(program).args(args).status() {
        Ok(status) => Some(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "error: `timecask {first}` runs `{program}`, which is not installed (not on PATH); \
                 install it with `cargo install --path replicate` from the timecask sources"
            );
            Some(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("error: could not run `{program}`: {e}");
            Some(ExitCode::FAILURE)
        }
    }
}
