//! Tables for people, and the purge's progress bar.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use jobs_core::Timestamp;

/// A table printed with aligned columns, two spaces apart.
pub struct Table {
    headers: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a header starting with `#` is a number, right-aligned
    /// (the `#` is not printed).
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            numeric: headers
                .iter()
                .map(|header| header.starts_with('#'))
                .collect(),
            headers: headers
                .iter()
                .map(|header| header.trim_start_matches('#'))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }

    /// The table as text, a line per row after the header's.
    pub fn render(&self, out: &mut String) {
        let width = |column: usize| {
            self.rows
                .iter()
                .map(|row| row[column].chars().count())
                .chain([self.headers[column].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str("  ");
                }
                let pad = widths[column].saturating_sub(cell.chars().count());
                if self.numeric[column] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// A time to the second, in UTC: `2026-01-31 12:00:00`.
pub fn when(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(..19).unwrap_or(&text).replacen('T', " ", 1)
}

/// `text` on one line, cut to `max` characters with `…`.
pub fn short(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A progress bar on stderr, redrawn in place at most ten times a second.
pub struct Bar {
    label: &'static str,
    total: u64,
    shown: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Bar {
    /// A bar counting up to `total`; drawn only when `shown`.
    pub fn new(label: &'static str, total: u64, shown: bool) -> Self {
        Self {
            label,
            total,
            shown,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// `done` of the total are done.
    pub fn update(&mut self, done: u64) {
        let due = self
            .drawn
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
        if self.shown && due {
            self.draw(done, false);
        }
    }

    /// Draws the last state and ends the line.
    pub fn finish(&mut self, done: u64) {
        if self.shown {
            self.draw(done, true);
        }
    }

    fn draw(&mut self, done: u64, last: bool) {
        const WIDTH: u64 = 30;
        let total = self.total.max(done).max(1);
        let filled = (done * WIDTH / total) as usize;
        let percent = done * 100 / total;
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / seconds;
        let line = format!(
            "\r{} [{}{}] {percent:>3}%  {done}/{} jobs  {rate:.0}/s",
            self.label,
            "#".repeat(filled),
            "-".repeat(WIDTH as usize - filled),
            self.total.max(done),
        );
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(line.as_bytes());
        if last {
            let _ = stderr.write_all(b"\n");
        }
        let _ = stderr.flush();
        self.drawn = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_sit_right() {
        let mut table = Table::new(&["NAME", "#COUNT"]);
        table.row(vec!["mail".into(), "7".into()]);
        table.row(vec!["reports-long".into(), "1200".into()]);
        let mut out = String::new();
        table.render(&mut out);
        assert_eq!(
            out,
            "NAME          COUNT\nmail              7\nreports-long   1200\n"
        );
    }

    #[test]
    fn long_text_is_cut_to_one_line() {
        assert_eq!(short("a\nb  c", 10), "a b c");
        assert_eq!(short("abcdefghijkl", 5), "abcd…");
        assert_eq!(
            when(Timestamp::from_unix_micros(1_767_225_600_123_456)),
            "2026-01-01 00:00:00"
        );
    }
}
