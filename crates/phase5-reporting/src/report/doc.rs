//! The report as a small document model — headings, paragraphs, lists, tables and figures —
//! rendered twice: to GitHub-flavoured Markdown (`report.md`, plots linked as files) and to one
//! self-contained HTML page (`report.html`, plots inlined as SVG, CSS embedded, nothing fetched).
//! Building the text once and rendering it twice keeps the two files saying the same numbers.

use std::fmt::Write as _;

/// A run of inline text.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    /// Plain text.
    Text(String),
    /// Emphasised (bold) text.
    Strong(String),
    /// Code, a path or a name.
    Code(String),
}

/// Plain text span.
pub fn t(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

/// Bold span.
pub fn b(s: impl Into<String>) -> Span {
    Span::Strong(s.into())
}

/// Code span.
pub fn c(s: impl Into<String>) -> Span {
    Span::Code(s.into())
}

/// A column's alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table: a header row and body rows of plain-text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Alignment per column (missing entries are left-aligned).
    pub align: Vec<Align>,
    /// Body rows.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first column is text and the others numbers.
    pub fn numeric(header: &[&str]) -> Table {
        let align = (0..header.len()).map(|i| if i == 0 { Align::Left } else { Align::Right }).collect();
        Table { header: header.iter().map(|h| h.to_string()).collect(), align, rows: vec![] }
    }

    /// Append a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// A plot written beside the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem (`loss` for `loss.svg` and `loss.png`).
    pub stem: String,
    /// The SVG markup, inlined in the HTML page.
    pub svg: String,
    /// Caption under the plot.
    pub caption: String,
    /// Whether a PNG copy was written beside the SVG.
    pub png: bool,
}

/// One block of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1 to 4.
    Heading(u8, String),
    /// A paragraph.
    Para(Vec<Span>),
    /// A bulleted list, one item per entry.
    List(Vec<Vec<Span>>),
    /// A table.
    Table(Table),
    /// A plot.
    Figure(Figure),
    /// A block of literal text (sample generations, raw values).
    Pre(String),
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// Title (first heading and the HTML `<title>`).
    pub title: String,
    /// Blocks in order.
    pub blocks: Vec<Block>,
}

impl Document {
    /// Add a heading.
    pub fn h(&mut self, level: u8, text: impl Into<String>) {
        self.blocks.push(Block::Heading(level, text.into()));
    }

    /// Add a paragraph.
    pub fn p(&mut self, spans: Vec<Span>) {
        self.blocks.push(Block::Para(spans));
    }

    /// Add a paragraph of plain text.
    pub fn text(&mut self, s: impl Into<String>) {
        self.p(vec![t(s)]);
    }

    /// Add a list.
    pub fn list(&mut self, items: Vec<Vec<Span>>) {
        if !items.is_empty() {
            self.blocks.push(Block::List(items));
        }
    }

    /// Add a table (nothing when it has no rows).
    pub fn table(&mut self, table: Table) {
        if !table.rows.is_empty() {
            self.blocks.push(Block::Table(table));
        }
    }

    /// GitHub-flavoured Markdown; figures link `<stem>.svg` beside the file.
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for block in &self.blocks {
            out.push('\n');
            match block {
                Block::Heading(level, text) => {
                    let _ = writeln!(out, "{} {}", "#".repeat(usize::from((*level).clamp(1, 6))), text);
                }
                Block::Para(spans) => {
                    let _ = writeln!(out, "{}", md_spans(spans));
                }
                Block::List(items) => {
                    for item in items {
                        let _ = writeln!(out, "- {}", md_spans(item));
                    }
                }
                Block::Table(table) => md_table(&mut out, table),
                Block::Figure(fig) => {
                    let png = if fig.png { format!(" (PNG: `{}.png`)", fig.stem) } else { String::new() };
                    let alt = fig.caption.replace(['[', ']'], "");
                    let _ = writeln!(out, "![{}]({}.svg)\n\n*{}*{png}", md_escape(&alt), fig.stem, md_escape(&fig.caption));
                }
                Block::Pre(text) => {
                    // A fence longer than any run of backticks inside cannot be closed early.
                    let longest = text.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
                    let fence = "`".repeat(longest.max(2) + 1);
                    let _ = writeln!(out, "{fence}\n{}\n{fence}", text.trim_end());
                }
            }
        }
        out
    }

    /// One HTML page with its CSS and the plots inlined: it references no file or URL.
    pub fn html(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n", esc(&self.title), esc(&self.title));
        for block in &self.blocks {
            match block {
                Block::Heading(level, text) => {
                    let l = (*level).clamp(1, 6);
                    let _ = writeln!(out, "<h{l} id=\"{}\">{}</h{l}>", anchor(text), esc(text));
                }
                Block::Para(spans) => {
                    let _ = writeln!(out, "<p>{}</p>", html_spans(spans));
                }
                Block::List(items) => {
                    out.push_str("<ul>\n");
                    for item in items {
                        let _ = writeln!(out, "<li>{}</li>", html_spans(item));
                    }
                    out.push_str("</ul>\n");
                }
                Block::Table(table) => html_table(&mut out, table),
                Block::Figure(fig) => {
                    let _ = writeln!(out, "<figure>\n{}\n<figcaption>{}</figcaption>\n</figure>", inline_svg(&fig.svg), esc(&fig.caption));
                }
                Block::Pre(text) => {
                    let _ = writeln!(out, "<pre>{}</pre>", esc(text.trim_end()));
                }
            }
        }
        out.push_str("</main>\n</body>\n</html>\n");
        out
    }
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#222;background:#fff;margin:0}\
main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem 3rem}\
h1{border-bottom:2px solid #ddd;padding-bottom:.3rem}h2{border-bottom:1px solid #eee;margin-top:2rem}\
table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem;display:block;overflow-x:auto;max-width:100%}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}th{background:#f4f4f4}\
td.num,th.num{text-align:right;white-space:nowrap}\
code{background:#f4f4f4;padding:0 .2rem;border-radius:3px}\
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.8rem;white-space:pre-wrap}\
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#555}";

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

fn anchor(text: &str) -> String {
    let mut a = String::new();
    for ch in text.chars() {
        if ch.is_ascii_alphanumeric() {
            a.push(ch.to_ascii_lowercase());
        } else if !a.ends_with('-') && !a.is_empty() {
            a.push('-');
        }
    }
    a.trim_end_matches('-').to_string()
}

/// An SVG as an HTML element: without the XML prolog and the namespace attribute, which HTML
/// does not need, so the page holds no URL at all.
fn inline_svg(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    body.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1).replacen(" xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "", 1)
}

/// Markdown text that reads as written: numbers, names and underscores stay greppable; only
/// what would turn into raw HTML (`<` before a tag-like character) is escaped, and line breaks
/// become spaces so a span cannot end its block.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '<' if chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) => out.push_str("&lt;"),
            '\n' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

/// A table cell: [`md_escape`] plus the column separator.
fn md_cell(s: &str) -> String {
    md_escape(s).replace('|', "\\|")
}

fn md_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(x) => md_escape(x),
            Span::Strong(x) => {
                // Emphasis must not close after a space, so trailing spaces go outside it.
                let inner = x.trim_end();
                format!("**{}**{}", md_escape(inner), &x[inner.len()..])
            }
            Span::Code(x) => {
                let x = x.replace('\n', " ");
                if x.contains('`') {
                    format!("`` {x} ``")
                } else {
                    format!("`{x}`")
                }
            }
        })
        .collect()
}

fn html_spans(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| match s {
            Span::Text(x) => esc(x),
            Span::Strong(x) => format!("<strong>{}</strong>", esc(x)),
            Span::Code(x) => format!("<code>{}</code>", esc(x)),
        })
        .collect()
}

fn md_table(out: &mut String, table: &Table) {
    let cell = |s: &str| md_cell(s);
    let _ = writeln!(out, "| {} |", table.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let rule: Vec<&str> = (0..table.header.len()).map(|i| if table.align.get(i) == Some(&Align::Right) { "---:" } else { "---" }).collect();
    let _ = writeln!(out, "|{}|", rule.join("|"));
    for row in &table.rows {
        let mut cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        cells.resize(table.header.len(), String::new());
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn html_table(out: &mut String, table: &Table) {
    let class = |i: usize| if table.align.get(i) == Some(&Align::Right) { " class=\"num\"" } else { "" };
    out.push_str("<table>\n<thead><tr>");
    for (i, h) in table.header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &table.rows {
        out.push_str("<tr>");
        for i in 0..table.header.len() {
            let _ = write!(out, "<td{}>{}</td>", class(i), esc(row.get(i).map_or("", String::as_str)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_renderings_escape_and_keep_the_numbers() {
        let mut d = Document { title: "T <1>".into(), blocks: vec![] };
        d.h(2, "Results & more");
        d.p(vec![t("acc "), b("46.1%"), t(" for "), c("lora")]);
        let mut tab = Table::numeric(&["variant", "acc"]);
        tab.row(vec!["a|b".into(), "50.0%".into()]);
        d.table(tab);
        d.blocks.push(Block::Figure(Figure { stem: "loss".into(), svg: "<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".into(), caption: "Loss".into(), png: true }));
        let md = d.markdown();
        assert!(md.contains("**46.1%**") && md.contains("a\\|b") && md.contains("![Loss](loss.svg)"), "{md}");
        let html = d.html();
        assert!(html.contains("<strong>46.1%</strong>") && html.contains("T &lt;1&gt;") && html.contains("<svg></svg>"), "{html}");
        assert!(!html.contains("http"), "{html}");
    }
}
