//! Colour for human output: on a terminal only, never with `NO_COLOR` set
//! (<https://no-color.org>), never in `--json` or `--csv`; `--color`
//! overrides the choice.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style as Ansi};

/// What a piece of output is, which decides its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Column headers.
    Header,
    /// `tx N` at the head of a transaction.
    Txid,
    /// Commit times.
    Time,
    /// Ops, by kind.
    Insert,
    Update,
    Delete,
    /// Purge and erase records.
    System,
}

impl Style {
    fn ansi(self) -> Ansi {
        match self {
            Style::Header => Ansi::new().bold(),
            Style::Txid => AnsiColor::Yellow.on_default(),
            Style::Time => AnsiColor::Blue.on_default(),
            Style::Insert => AnsiColor::Green.on_default(),
            Style::Update => AnsiColor::Cyan.on_default(),
            Style::Delete => AnsiColor::Red.on_default(),
            Style::System => AnsiColor::Magenta.on_default().bold(),
        }
    }

    /// The style of an op's name (`insert`, `update`, `delete`, `purge`,
    /// `erase`), if it is one.
    pub fn of_op(name: &str) -> Option<Style> {
        match name {
            "insert" => Some(Style::Insert),
            "update" => Some(Style::Update),
            "delete" => Some(Style::Delete),
            "purge" | "erase" => Some(Style::System),
            _ => None,
        }
    }
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb
    Auto,
    Always,
    Never,
}

/// Paints text, or leaves it alone when colour is off.
#[derive(Clone, Copy, Debug)]
pub struct Paint {
    enabled: bool,
}

impl Paint {
    /// Decides once, before a pager takes over stdout.
    pub fn new(choice: ColorChoice, machine_output: bool) -> Paint {
        let enabled = !machine_output
            && match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
                }
            };
        Paint { enabled }
    }

    /// No colour at all.
    #[cfg(test)]
    pub fn off() -> Paint {
        Paint { enabled: false }
    }

    pub fn paint(self, style: Style, text: &str) -> String {
        if self.enabled && !text.is_empty() {
            let ansi = style.ansi();
            format!("{ansi}{text}{ansi:#}")
        } else {
            text.to_string()
        }
    }
}
