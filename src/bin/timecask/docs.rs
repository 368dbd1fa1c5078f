//! Documentation generated from the command-line definition itself:
//! shell completions (`clap_complete`) and man pages (`clap_mangen`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

use crate::common::line;

/// `completions SHELL`: the completion script on stdout.
pub fn completions(out: &mut dyn Write, shell: Shell, mut command: clap::Command) -> Result<()> {
    clap_complete::generate(shell, &mut command, "timecask", out);
    Ok(())
}

/// `man`: `timecask.1` on stdout, or with `--dir` one page per command
/// (`timecask.1`, `timecask-log.1`, ...) written into DIR.
pub fn man(out: &mut dyn Write, dir: Option<&Path>, command: clap::Command) -> Result<()> {
    let Some(dir) = dir else {
        clap_mangen::Man::new(command).render(out)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut pages = vec![("timecask".to_string(), command.clone())];
    for sub in command.get_subcommands() {
        let name = format!("timecask-{}", sub.get_name());
        // Named as the page is; `timecask log` is run as two words.
        let sub = sub
            .clone()
            .name(name.clone())
            .bin_name(format!("timecask {}", sub.get_name()));
        pages.push((name, sub));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page).render(&mut bytes)?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        line(out, path.display().to_string())?;
    }
    Ok(())
}
