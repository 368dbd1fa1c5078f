//! Tables: aligned text for people, CSV for spreadsheets.

use std::io::Write;

use anyhow::Result;

use crate::style::{Paint, Style};

/// An aligned text table. Notes are lines printed under the row before
/// them, indented, without taking part in the column widths; in CSV they
/// are one more column, `CHANGES`, joined by `; `.
pub struct Table {
    indent: String,
    headers: Option<Vec<String>>,
    rows: Vec<Row>,
    /// The column holding op names, coloured by op.
    op_column: Option<usize>,
    /// Columns painted in one style.
    styled_columns: Vec<(usize, Style)>,
}

enum Row {
    Cells(Vec<String>),
    Note(String),
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            indent: String::new(),
            headers: Some(headers.iter().map(|h| h.to_string()).collect()),
            rows: Vec::new(),
            op_column: None,
            styled_columns: Vec::new(),
        }
    }

    /// Colours column `i` by the op named in it.
    pub fn op_column(mut self, i: usize) -> Table {
        self.op_column = Some(i);
        self
    }

    /// Paints column `i` in `style`.
    pub fn style_column(mut self, i: usize, style: Style) -> Table {
        self.styled_columns.push((i, style));
        self
    }

    /// A table without a header line, indented by `indent` spaces.
    pub fn plain(indent: usize) -> Table {
        Table {
            indent: " ".repeat(indent),
            headers: None,
            rows: Vec::new(),
            op_column: None,
            styled_columns: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row::Cells(cells));
    }

    pub fn note(&mut self, line: String) {
        self.rows.push(Row::Note(line));
    }

    /// The table as aligned text without colour.
    #[cfg(test)]
    pub fn render(&self) -> String {
        self.render_with(Paint::off())
    }

    /// The table as aligned text, headers and ops painted.
    pub fn render_with(&self, paint: Paint) -> String {
        let all_cells = self
            .headers
            .iter()
            .chain(self.rows.iter().filter_map(|r| match r {
                Row::Cells(cells) => Some(cells),
                Row::Note(_) => None,
            }));
        let mut widths: Vec<usize> = Vec::new();
        for cells in all_cells.clone() {
            for (i, cell) in cells.iter().enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(i) {
                    Some(w) => *w = (*w).max(width),
                    None => widths.push(width),
                }
            }
        }
        // Padding is computed on the plain text, then the cell is painted.
        let line = |cells: &[String], header: bool| {
            let n = cells
                .iter()
                .rposition(|c| !c.is_empty())
                .map_or(0, |i| i + 1);
            let mut text = self.indent.clone();
            for (i, cell) in cells[..n].iter().enumerate() {
                let style = if header {
                    Some(Style::Header)
                } else if self.op_column == Some(i) {
                    Style::of_op(cell)
                } else {
                    self.styled_columns
                        .iter()
                        .find(|(column, _)| *column == i)
                        .map(|(_, style)| *style)
                };
                match style {
                    Some(style) => text.push_str(&paint.paint(style, cell)),
                    None => text.push_str(cell),
                }
                if i + 1 < n {
                    let pad = widths[i] - cell.chars().count();
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            text
        };
        let mut out = String::new();
        if let Some(headers) = &self.headers {
            out.push_str(&line(headers, true));
            out.push('\n');
        }
        for row in &self.rows {
            match row {
                Row::Cells(cells) => out.push_str(&line(cells, false)),
                Row::Note(note) => {
                    out.push_str(&self.indent);
                    out.push_str("  ");
                    out.push_str(note);
                }
            }
            out.push('\n');
        }
        out
    }

    /// The table as CSV (RFC 4180): the headers, then one record per row.
    pub fn write_csv(&self, out: &mut dyn Write) -> Result<()> {
        let has_notes = self.rows.iter().any(|r| matches!(r, Row::Note(_)));
        let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(out);
        if let Some(headers) = &self.headers {
            let mut headers = headers.clone();
            if has_notes {
                headers.push("CHANGES".to_string());
            }
            writer.write_record(&headers)?;
        }
        let mut rows = self.rows.iter().peekable();
        while let Some(row) = rows.next() {
            let Row::Cells(cells) = row else { continue };
            let mut record = cells.clone();
            if has_notes {
                let mut notes = Vec::new();
                while let Some(Row::Note(note)) = rows.peek() {
                    notes.push(note.as_str());
                    rows.next();
                }
                record.push(notes.join("; "));
            }
            writer.write_record(&record)?;
        }
        writer.flush()?;
        Ok(())
    }

    /// Writes the table as `--csv` asks, or as aligned text.
    pub fn print(&self, ctx: &crate::common::Ctx, out: &mut dyn Write) -> Result<()> {
        if ctx.csv {
            return self.write_csv(out);
        }
        out.write_all(self.render_with(ctx.paint).as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn table_aligns_columns_and_indents_notes() {
        let mut table = Table::new(&["TXID", "OP", "VALUE"]);
        table.row(vec!["1".into(), "insert".into(), "a".into()]);
        table.note("name: 1 -> 2".into());
        table.row(vec!["10".into(), "update".into(), "".into()]);
        assert_eq!(
            table.render(),
            "TXID  OP      VALUE\n1     insert  a\n  name: 1 -> 2\n10    update\n"
        );
        let mut csv = Vec::new();
        table.write_csv(&mut csv).expect("csv");
        assert_eq!(
            String::from_utf8(csv).expect("utf-8"),
            "TXID,OP,VALUE,CHANGES\n1,insert,a,name: 1 -> 2\n10,update,,\n"
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut table = Table::new(&["KEY", "VALUE"]);
        table.row(vec!["a,b".into(), r#"{"x":1}"#.into()]);
        let mut csv = Vec::new();
        table.write_csv(&mut csv).expect("csv");
        assert_eq!(
            String::from_utf8(csv).expect("utf-8"),
            "KEY,VALUE\n\"a,b\",\"{\"\"x\"\":1}\"\n"
        );
    }
}
