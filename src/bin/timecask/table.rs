//! Aligned text tables for human output.

/// An aligned text table. Notes are lines printed under the row before
/// them, indented, without taking part in the column widths.
pub struct Table {
    indent: String,
    headers: Option<Vec<String>>,
    rows: Vec<Row>,
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
        }
    }

    /// A table without a header line, indented by `indent` spaces.
    pub fn plain(indent: usize) -> Table {
        Table {
            indent: " ".repeat(indent),
            headers: None,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Row::Cells(cells));
    }

    pub fn note(&mut self, line: String) {
        self.rows.push(Row::Note(line));
    }

    pub fn render(&self) -> String {
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
        let line = |cells: &[String]| {
            let mut text = self.indent.clone();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad + 2));
                }
            }
            text.trim_end().to_string()
        };
        let mut out = String::new();
        if let Some(headers) = &self.headers {
            out.push_str(&line(headers));
            out.push('\n');
        }
        for row in &self.rows {
            match row {
                Row::Cells(cells) => out.push_str(&line(cells)),
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
    }
}
