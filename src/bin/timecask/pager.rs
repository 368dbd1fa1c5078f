//! A pager for long output on a terminal, the way git does it: the
//! command's stdout goes through `$TIMECASK_PAGER`, else `$PAGER`, else
//! `less`, run by `sh -c`, with `LESS=FRX` unless `LESS` is set (quit if
//! the output fits one screen, pass colours, keep the screen). No pager
//! when stdout is not a terminal, with `--no-pager`, for `--follow`, or
//! when the pager is set to an empty string or `cat`.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

/// A running pager; [`Pager::finish`] waits for the user to quit it.
pub struct Pager {
    child: Child,
}

impl Pager {
    /// Starts the pager if stdout is a terminal and one is configured; its
    /// stdin is where output goes. `None` means: write to stdout.
    pub fn start() -> Option<(Pager, ChildStdin)> {
        if !std::io::stdout().is_terminal() {
            return None;
        }
        let command = pager_command()?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env(
                "LESS",
                std::env::var_os("LESS").unwrap_or_else(|| "FRX".into()),
            )
            .env("LV", std::env::var_os("LV").unwrap_or_else(|| "-c".into()))
            .stdin(Stdio::piped())
            .spawn()
            // A pager that cannot start is no reason to fail: print directly.
            .ok()?;
        let stdin = child.stdin.take()?;
        ignore_interrupts();
        Some((Pager { child }, stdin))
    }

    /// Waits for the pager to exit (after its input was closed).
    pub fn finish(mut self) {
        let _ = self.child.wait();
    }
}

/// From here on Ctrl-C no longer ends timecask, only what the pager makes
/// of it: killed, timecask would leave the pager fighting the shell for the
/// terminal. Quitting the pager ends timecask through a broken pipe.
#[cfg(unix)]
fn ignore_interrupts() {
    // SAFETY: `signal` with `SIG_IGN` installs no handler code; it only
    // changes this process's disposition, after the pager was spawned (so
    // the pager keeps the default).
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn ignore_interrupts() {}

/// The pager to run, or `None` for no pager.
fn pager_command() -> Option<OsString> {
    let chosen = std::env::var_os("TIMECASK_PAGER")
        .or_else(|| std::env::var_os("PAGER"))
        .unwrap_or_else(|| "less".into());
    let trimmed = chosen.to_string_lossy().trim().to_string();
    if trimmed.is_empty() || trimmed == "cat" {
        return None;
    }
    Some(chosen)
}

/// Where a command's output goes: stdout, or a pager's stdin.
pub enum Out {
    Stdout(std::io::BufWriter<std::io::StdoutLock<'static>>),
    Pager(std::io::BufWriter<ChildStdin>),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Stdout(w) => w.write(buf),
            Out::Pager(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stdout(w) => w.flush(),
            Out::Pager(w) => w.flush(),
        }
    }
}
